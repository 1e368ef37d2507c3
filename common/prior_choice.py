"""Which prior file ``invert.py`` loads by default, and which ``train.py`` command writes it.

``conf/prior/<name>.yaml`` names a prior by the file ``train.py`` exports by default
(``outputs/priors/<model>_<data>.pt``) and the data resolution it generates. ``invert.yaml`` defaults to
``prior=vae``; a solver config picks the prior it is made for with ``override /prior@_global_.prior: NAME``
(the StyleGAN solvers ``stylegan2``, the DCGAN ones ``dcgan``, mGANprior ``pggan``). ``prior=NAME`` and
``prior.checkpoint=FILE`` on the command line win over both.
"""
from __future__ import annotations

from pathlib import Path

from common.cli import CONF_DIR
from common.errors import UserInputError

DATA_CHOICE = "${hydra:runtime.choices.data}"
MODEL_CHOICE = "${hydra:runtime.choices.model}"
#: data overrides that do not change what a prior is trained on (left out of the train.py command)
RUN_ONLY_DATA_KEYS = ("data.batch_size=", "data.num_workers=")


def _yaml(path: Path) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(path), resolve=False)


def _default_choice(config_file: str, group: str) -> str:
    for entry in _yaml(CONF_DIR / config_file).get("defaults", []):
        if isinstance(entry, dict) and group in entry:
            return str(entry[group])
    raise KeyError(f"conf/{config_file} has no default for {group}")


def solver_prior(solver: str) -> str | None:
    """The prior a solver config picks (through its base configs); None: it keeps invert.yaml's default."""
    bases = []
    for entry in _yaml(CONF_DIR / "solver" / f"{solver}.yaml").get("defaults", []):
        if isinstance(entry, dict):
            for key, value in entry.items():
                if key.split()[-1].startswith("/prior@"):
                    return str(value)
        elif entry != "_self_":
            bases.append(entry)
    return next((p for p in map(solver_prior, bases) if p is not None), None)


def default_prior_path(prior: str, data: str) -> Path:
    """``conf/prior/<prior>.yaml``'s checkpoint for ``data=<data>``."""
    return Path(str(_yaml(CONF_DIR / "prior" / f"{prior}.yaml")["prior"]["checkpoint"]).replace(DATA_CHOICE, data))


def train_command(path: str | Path, data: str | None = None, data_overrides: list[str] = ()) -> str | None:
    """``python train.py model=M [data=D] ...``: the command whose default export is ``path`` (for ``data=<data>``,
    or any data config when None); None when no model's is."""
    export = str(_yaml(CONF_DIR / "train.yaml")["export_path"])
    datas = [data] if data is not None else sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml"))
    for model in sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml")):
        for data_ in datas:
            if Path(export.replace(MODEL_CHOICE, model).replace(DATA_CHOICE, data_)).resolve() == Path(path).resolve():
                data_args = [] if data_ == _default_choice("train.yaml", "data") else [f"data={data_}"]
                return " ".join(["python train.py", f"model={model}", *data_args, *data_overrides])
    return None


def invert_users(path: str | Path, data: str) -> str | None:
    """Who in ``invert.py`` loads ``path`` by default for ``data=<data>``: "invert.py" (the default solver's
    prior), "invert.py solver=A|B" (the solvers that pick that prior), or None."""
    from hydra.utils import get_class

    default_prior = _default_choice("invert.yaml", "prior")
    default_solver = _default_choice("invert.yaml", "solver")
    users = {}
    for solver in sorted(p.stem for p in (CONF_DIR / "solver").glob("*.yaml")):
        target = _target(solver)
        if target is not None and getattr(get_class(target), "requires_prior", False):
            users.setdefault(solver_prior(solver) or default_prior, []).append(solver)
    for prior, solvers in users.items():
        if default_prior_path(prior, data).resolve() == Path(path).resolve():
            return "invert.py" if default_solver in solvers else f"invert.py solver={'|'.join(solvers)}"
    return None


def _target(solver: str) -> str | None:
    config = _yaml(CONF_DIR / "solver" / f"{solver}.yaml")
    if "_target_" in config:
        return config["_target_"]
    bases = [e for e in config.get("defaults", []) if isinstance(e, str) and e != "_self_"]
    return next((t for t in map(_target, bases) if t is not None), None)


def choose_prior(cfg) -> str:
    """The prior file ``invert.py`` loads (``prior.checkpoint``), after printing which and why. A default that
    does not exist is refused with the ``train.py`` command that writes it."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    choices, given = hydra_cfg.runtime.choices, [str(o) for o in hydra_cfg.overrides.task]
    path, prior, solver = str(cfg.prior.checkpoint), choices.get("prior"), choices.get("solver")
    keys = {o.split("=", 1)[0].lstrip("+~") for o in given}
    if "prior.checkpoint" in keys:
        print(f"prior file: {path} (prior.checkpoint given)")
        return path
    if "prior" in keys:
        why = f"prior={prior} given"
    elif solver_prior(solver) is not None:
        why = f"solver={solver} runs on prior={prior}"
    else:
        why = f"the default prior={prior}"
    if not Path(path).exists():
        data_overrides = [o for o in given if o.startswith("data.") and not o.startswith(RUN_ONLY_DATA_KEYS)]
        command = train_command(path, choices.get("data"), data_overrides)
        if command is not None:
            raise UserInputError(f"{path} does not exist ({why}, conf/prior/{prior}.yaml): train it with "
                                 f"`{command}` or pass prior.checkpoint=FILE")
    print(f"prior file: {path} ({why}, conf/prior/{prior}.yaml)")
    return path
