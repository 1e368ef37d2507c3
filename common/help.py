"""``--help`` of the entry points, generated from ``conf/`` so that it cannot drift from the configs:
the script's usage, the config groups it composes (not every folder in ``conf/``) with each option's
first comment line, and its own keys with their comments."""
from __future__ import annotations

import re
import sys
import textwrap

from common.cli import CONF_DIR

HELP_FLAGS = ("--help", "-h")


def first_comment(path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("# @package"):  # Hydra's package header
            continue
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line.strip():
            break
    return ""


def groups(config_name: str) -> dict[str, str]:
    """``{group: default option}`` from the defaults list of ``conf/<config_name>.yaml``."""
    from omegaconf import OmegaConf

    out = {}
    for entry in OmegaConf.to_container(OmegaConf.load(CONF_DIR / f"{config_name}.yaml")).get("defaults", []):
        if isinstance(entry, dict):
            out.update({str(k): str(v) for k, v in entry.items()})
    return out


def documented_keys(config_name: str) -> list[tuple[str, str, str]]:
    """(dotted key, default as written, comment above it) for the script's own keys (one level of
    nesting, e.g. ``prior.checkpoint``); ``defaults``, ``hydra`` and group overrides are left out."""
    skip = set(groups(config_name)) | {"defaults", "hydra"}
    keys, comment, parent = [], [], None
    for line in (CONF_DIR / f"{config_name}.yaml").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("#").strip())
            continue
        match = re.match(r"^( *)([A-Za-z_][\w]*):\s*(.*?)\s*(?:#\s*(.*))?$", line)
        if not match:
            comment = []
            continue
        indent, key, value, trailing = match.groups()
        if not indent:
            parent = key if not value else None
            if value and key not in skip:
                keys.append((key, value, " ".join(comment + ([trailing] if trailing else []))))
        elif parent is not None and parent not in skip and len(indent) == 2:
            keys.append((f"{parent}.{key}", value, " ".join(comment + ([trailing] if trailing else []))))
        comment = []
    return keys


def help_text(config_name: str, script_doc: str) -> str:
    usage = first_comment(CONF_DIR / f"{config_name}.yaml")
    lines = [f"usage: {usage}", "", textwrap.dedent(script_doc or "").strip(), "",
             "Config groups (GROUP=OPTION; * = default):"]
    for group, default in groups(config_name).items():
        lines.append(f"  {group}")
        for option in sorted((CONF_DIR / group).glob("*.yaml")):
            mark = "*" if option.stem == default else " "
            lines.append(f"    {mark}{option.stem:<20} {first_comment(option)}")
    lines += ["", "Keys (KEY=VALUE; default as configured):"]
    for key, value, comment in documented_keys(config_name):
        lines.append(f"  {key}={value}")
        if comment:
            lines += textwrap.wrap(comment, width=96, initial_indent="      ", subsequent_indent="      ")
    lines += ["",
              "Any key of a group's option: GROUP.KEY=VALUE (e.g. trainer.devices=2; a key the option lacks:",
              "+GROUP.KEY=VALUE). Run directory: hydra.run.dir=OUT. Print the composed config: --cfg job."]
    return "\n".join(lines) + "\n"


def handle_help(config_name: str, script_doc: str, argv: list[str] | None = None) -> None:
    """Print :func:`help_text` and exit 0 when ``--help``/``-h`` is among the arguments."""
    argv = sys.argv[1:] if argv is None else argv
    if any(a in HELP_FLAGS for a in argv):
        sys.stdout.write(help_text(config_name, script_doc))
        sys.exit(0)
