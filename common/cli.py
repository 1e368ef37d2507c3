"""Shared entry-point plumbing for train.py and invert.py: the config is checked before Hydra runs.

:func:`check_overrides` composes the config once, exactly as Hydra will, and refuses with one
``error:`` line and exit 2 (before Hydra creates the run directory):

* overrides Hydra rejects (unknown group options, keys that do not exist: with the nearest
  existing key as a suggestion, never ``+key``),
* ``+key`` / ``++key`` for keys no code reads (only arguments a ``_target_`` class takes, and whole
  ``_target_`` entries of a collection such as ``+callbacks.NAME={_target_: ...}``, may be added),
* a run directory, ``export_path`` or ``seed`` that cannot work, and an online W&B logger without a login.
"""
from __future__ import annotations

import difflib
import netrc
import os
import sys
from pathlib import Path

from common.errors import UserInputError

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
#: config nodes whose entries are objects (``_target_`` configs) built in order: a user may add one
COLLECTIONS = ("callbacks",)


def check_overrides(config_name: str, argv: list[str] | None = None):
    """:func:`check_config`'s config; a ``UserInputError`` becomes ``error: <one line>`` and exit 2."""
    argv = sys.argv[1:] if argv is None else argv
    if any(a.startswith("-") for a in argv):  # --help, --cfg, -m …: leave to Hydra
        return None
    try:
        return check_config(config_name, argv)
    except UserInputError as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        sys.exit(2)


def check_config(config_name: str, argv: list[str]):
    """The composed config (with ``hydra``) of ``python <script> *argv``, or ``UserInputError``."""
    from hydra.core.hydra_config import HydraConfig

    cfg = compose_config(config_name, argv)
    refuse_unread_additions(cfg, argv, config_name)
    HydraConfig.instance().set_config(cfg)  # resolves ${hydra:runtime.choices.*} in paths
    run_dir, export_path = _resolved(cfg.hydra.run, "dir"), _resolved(cfg, "export_path")
    if run_dir is not None:
        check_writable_dir(run_dir, "hydra.run.dir")
    check_seed(cfg.get("seed"))
    if export_path:
        check_writable_file(export_path, "export_path")
    if cfg.get("logger"):
        check_logger_login(cfg.logger)
    return cfg


def _resolved(node, key: str):
    """``node[key]`` resolved, or None when it is absent or resolves only at run time (left to Hydra)."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        return node.get(key)
    except OmegaConfBaseException:
        return None


def _script(config_name: str) -> str:
    return {"invert": "invert.py", "train": "train.py"}.get(config_name, f"{config_name}.py")


def _compose(config_name: str, overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides, return_hydra_config=True)


def compose_config(config_name: str, argv: list[str]):
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        return _compose(config_name, argv)
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        message = str(err)
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()] or ["invalid override"]
    hint = f"see `python {_script(config_name)} --help` for config groups"
    for override in argv:
        key, _, value = override.partition("=")
        if key and not key.startswith(("+", "~")) and f"'{key}'" in lines[0] and "Could not override" in lines[0]:
            others = [a for a in argv if a != override]
            try:
                base = _compose(config_name, others)
            except (HydraException, OmegaConfBaseException, ValueError):
                base = _compose(config_name, [])
            raise UserInputError(_missing_key_message(base, key, value, hint))
    what = lines[0]
    if "An item is already at" in what:
        what = f"{what} Set it without the leading '+'."
    if len(lines) > 1 and lines[1].startswith("Key"):
        what = f"{what} {lines[1]}"
    if "Available options" in message:
        options = [ln for ln in lines[lines.index(next(ln for ln in lines if ln.startswith("Available"))) + 1:]
                   if " " not in ln and not ln.startswith(("Config", "provider"))]
        choice = next((a.partition("=")[2] for a in argv if f"/{a.partition('=')[2]}'" in lines[0]), "")
        near = difflib.get_close_matches(choice, options, n=1)
        what = f"{what}; available: {', '.join(options)}" + (f" (did you mean {near[0]}?)" if near else "")
    raise UserInputError(f"{what} ({hint})")


def config_keys(cfg, prefix: str = "") -> list[str]:
    """Every dotted key of a config's values (unresolved), without the ``hydra`` node."""
    from omegaconf import DictConfig

    keys = []
    for key in cfg.keys() if isinstance(cfg, DictConfig) else []:
        if not prefix and key == "hydra":
            continue
        path = f"{prefix}{key}"
        node = cfg._get_node(key)
        if isinstance(node, DictConfig):
            keys.extend(config_keys(node, f"{path}."))
        else:
            keys.append(path)
    return keys


def _missing_key_message(cfg, key: str, value: str, hint: str) -> str:
    keys = config_keys(cfg)
    parent, _, leaf = key.rpartition(".")
    siblings = [k.rpartition(".")[2] for k in keys if k.rpartition(".")[0] == parent]
    near = [f"{parent}.{m}" if parent else m for m in difflib.get_close_matches(leaf, siblings, n=1, cutoff=0.6)]
    if not near:  # the right name in the wrong place, e.g. max_epochs → trainer.max_epochs
        leaves = {k.rpartition(".")[2]: k for k in keys}
        near = [leaves[m] for m in difflib.get_close_matches(leaf, list(leaves), n=1, cutoff=0.8)]
    suggestion = f"; did you mean {near[0]}={value}?" if near else "; no code reads it"
    group = key.partition(".")[0]
    choice = cfg.hydra.runtime.choices.get(group) if "." in key else None
    where = f" in {group}={choice}" if choice else ""
    return f"key '{key}' does not exist{where}{suggestion} ({hint})"


def refuse_unread_additions(cfg, argv: list[str], config_name: str) -> None:
    """``+a.b.c=v`` is accepted only where a ``_target_`` class takes the added argument (or takes
    ``**kwargs``), or inside a dict argument of such a class, or as a ``_target_`` entry of one of
    :data:`COLLECTIONS`; keys nothing reads are refused."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import DictConfig

    additions = [o.key_or_group for o in OverridesParser.create().parse_overrides(argv)
                 if (o.is_add() or o.is_force_add()) and not o.key_or_group.startswith("hydra")
                 and not (CONF_DIR / o.key_or_group).is_dir()]  # +group=option adds a config group
    if not additions:
        return
    base = _compose(config_name, [a for a in argv if not a.startswith("+")])
    for key in additions:
        collection, _, entry = key.partition(".")
        if collection in COLLECTIONS and entry and "." not in entry:
            added = cfg[collection][entry]
            if not isinstance(added, DictConfig) or "_target_" not in added:
                raise UserInputError(f"+{key}: an entry of {collection} must be a config with a _target_, e.g. "
                                     f"'+{key}={{_target_: lightning.pytorch.callbacks.LearningRateMonitor}}'")
            continue
        node, inside_target = base, False
        for part in key.split("."):
            target = node.get("_target_")
            if target is not None:
                why = _unknown_argument(target, part)
                if why:
                    raise UserInputError(f"+{key}: {why} (see `python {_script(config_name)} --help`)")
                inside_target = True
            child = node._get_node(part) if part in node else None
            if child is None:
                if not inside_target:
                    raise UserInputError(f"+{key}: no code reads this key ({_suggest(base, key)}only arguments "
                                         f"of a _target_ class can be added; see `python {_script(config_name)} "
                                         f"--help`)")
                break
            if not isinstance(child, DictConfig):
                break
            node = child


def _suggest(cfg, key: str) -> str:
    near = difflib.get_close_matches(key, config_keys(cfg), n=1, cutoff=0.6)
    return f"did you mean {near[0]}? " if near and near[0] != key else ""


def _accepted_arguments(cls) -> set[str] | None:
    """Argument names ``cls(...)`` takes; None when it takes any (``**kwargs`` not forwarded within the project)."""
    import inspect

    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = list(inspect.signature(klass.__init__).parameters.values())[1:]
        names |= {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names
        if not str(getattr(sys.modules.get(klass.__module__), "__file__", "")).startswith(str(CONF_DIR.parent)):
            return None  # e.g. WandbLogger passes **kwargs on to wandb.init
    return None


def _unknown_argument(target: str, name: str) -> str | None:
    """Why ``name`` is not an argument of the class ``target``, or None when it is."""
    from hydra.utils import get_class

    try:
        accepted = _accepted_arguments(get_class(target))
    except Exception:  # noqa: BLE001 - a target that does not import is reported by Hydra itself later
        return None
    if accepted is None or name in accepted:
        return None
    near = difflib.get_close_matches(name, sorted(accepted), n=1)
    return f"{target.rpartition('.')[2]} takes no argument '{name}'" + (f"; did you mean {near[0]}?" if near else "")


# -- values that only fail late -------------------------------------------------------------------
def check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 32:
        raise UserInputError(f"seed must be an integer in [0, 2^32), got {seed!r}")


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def _probe_directory(directory: Path, what: str, target: Path) -> None:
    """Create and remove a file in ``directory``: the only test that also holds for root and read-only mounts."""
    import tempfile

    if not directory.is_dir():
        raise UserInputError(f"{what} {target} cannot be created: {directory} is a file, not a directory")
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as err:
        raise UserInputError(f"{what} {target} is not writable ({err.strerror or type(err).__name__} in "
                             f"{directory}); choose a writable location") from None


def check_writable_dir(path, what: str) -> None:
    """``path`` is (or can be created as) a writable directory; nothing is created."""
    path = Path(str(path))
    if path.exists() and not path.is_dir():
        raise UserInputError(f"{what} {path} is a file, not a directory; choose another directory")
    _probe_directory(_existing_ancestor(path), what, path)


def check_writable_file(path, what: str) -> None:
    """``path`` can be written as a file (its directory exists or can be created, and is writable)."""
    path = Path(str(path))
    if path.is_dir():
        raise UserInputError(f"{what} {path} is a directory; give a file path such as {path / 'prior.pt'}")
    _probe_directory(_existing_ancestor(path.parent), what, path)


def check_logger_login(logger) -> None:
    """An online W&B logger needs an API key (``wandb login`` or WANDB_API_KEY); found out now, not after a run."""
    if not str(logger.get("_target_", "")).endswith("WandbLogger") or logger.get("offline", False):
        return
    if os.environ.get("WANDB_MODE", "").lower() in ("offline", "disabled", "dryrun") or os.environ.get("WANDB_API_KEY"):
        return
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0].split(":")[0]
    try:
        if netrc.netrc(os.environ.get("NETRC")).authenticators(host):
            return
    except (OSError, netrc.NetrcParseError):
        pass
    raise UserInputError(f"logger.offline=false needs a W&B login (no API key for {host}): run `wandb login` or set "
                         f"WANDB_API_KEY, or keep logger.offline=true (sync later with `wandb sync`)")
