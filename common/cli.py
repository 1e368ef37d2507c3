"""Shared entry-point plumbing for train.py and invert.py."""
from __future__ import annotations

import sys
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def check_overrides(config_name: str, argv: list[str] | None = None) -> None:
    """Compose the config once before Hydra runs, so a bad override is one line, exit 2.

    Hydra's own report of an unknown group option or key spans many lines and exits 1;
    this turns it into ``error: <what> (<hint>)``.
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    argv = sys.argv[1:] if argv is None else argv
    if any(a.startswith("-") for a in argv):  # --help, --cfg, -m …: leave to Hydra
        return
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            compose(config_name=config_name, overrides=argv, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        what = lines[0] if lines else type(err).__name__
        if len(lines) > 1 and lines[1].startswith(("Key", "To append")):
            what = f"{what} {lines[1]}"
        options = ""
        if "Available options" in str(err):
            opts = [ln for ln in lines[1:] if not ln.startswith(("Available", "Config search", "Provider", "---", "In "))]
            options = f"; available: {', '.join(o.split()[0] for o in opts if o and ' ' not in o.strip())}"
        print(f"error: {what}{options} (see `python {Path(sys.argv[0]).name} --help` for config groups)",
              file=sys.stderr)
        sys.exit(2)
