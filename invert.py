"""Solve inverse problems with a generative prior or a classical baseline.

``python invert.py solver=S init=I operator=O data=D prior.checkpoint=P num_images=N batch_size=B
restarts=R seed=K hydra.run.dir=OUT`` solves the first N test images of D and writes
OUT/metrics.csv, OUT/summary.json, OUT/summary.md, OUT/grid.png and OUT/reconstructions.pt.
With ``measurements=FILE`` it reconstructs measured data instead (no ground truth).
"""
from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from common.cli import check_overrides
from common.errors import UserInputError, exit_on_user_error
from common.help import handle_help
from common.runs import register_resolvers

register_resolvers()


def _positive_int(cfg: DictConfig, key: str) -> int:
    value = cfg.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserInputError(f"{key} must be a positive integer, got {value!r}")
    return value


def set_fused_kernels(value) -> None:
    """``fused_kernels``: true/false, or null for $GENPRIOR_FUSED (default on); through the environment,
    so that processes spawned for DDP follow it too."""
    import os

    from common import fused

    if value is None:
        return
    if not isinstance(value, bool):
        raise UserInputError(f"fused_kernels must be true, false or null, got {value!r}")
    os.environ[fused.ENV] = "1" if value else "0"


def build_solver(cfg: DictConfig, prior=None, operator=None):
    from hydra.utils import get_class

    from common.instantiate import instantiate_named
    from solvers.base import solver_class

    kwargs = {"restarts": cfg.restarts}
    if solver_class(cfg.solver._target_).requires_prior:
        kwargs.update(prior=prior, init=instantiate_named(cfg.init), progress=bool(cfg.trainer.enable_progress_bar))
    solver = instantiate_named(cfg.solver, **kwargs)
    from solvers.twins import TwinSelection, resolve_rule

    rule = resolve_rule(cfg.twin_selection.rule, getattr(get_class(cfg.data._target_), "mass_centred", False), prior,
                        cfg.solver.get("select"))
    if TwinSelection.applies(rule, operator, prior):
        solver = TwinSelection(solver, rule, cfg.twin_selection.centre)
        print(f"Fourier twins: kept twin chosen by rule {rule} (twin_selection.rule={cfg.twin_selection.rule}; docs/TWINS.md)")
    return solver


def method_name(cfg: DictConfig, requires_prior: bool) -> str:
    """``<solver>-<init>``; ablations say so: ``prilo[skip=backproject,refine]-mii``, ``prilo[ball=false]-mii``."""
    ablations = []
    if cfg.solver.get("skip"):
        ablations.append(f"skip={','.join(cfg.solver.skip)}")
    if cfg.solver.get("ball") is False:
        ablations.append("ball=false")
    solver = f"{cfg.solver.name}[{';'.join(ablations)}]" if ablations else str(cfg.solver.name)
    return f"{solver}-{cfg.init.name}" if requires_prior else solver


def report_prior(path, prior) -> None:
    """Say which prior file runs (its training length and architecture); warn when it was trained short."""
    import sys

    from priors.provenance import prior_report

    line, warning = prior_report(path, prior)
    print(line)
    if warning is not None:
        print(warning, file=sys.stderr)


@exit_on_user_error
def invert(cfg: DictConfig) -> dict | None:
    from hydra.core.hydra_config import HydraConfig
    from torch.utils.data import DataLoader, Subset

    from common.cli import check_seed
    from common.instantiate import instantiate, instantiate_trainer

    from common.output import close_logger, make_logger, progress_bars, quiet_frameworks
    from common.prior_choice import choose_prior
    from lightning_modules.inversion import ContiguousShards, InversionModule, start_or_resume
    from lightning_modules.inversion_report import write_inversion_results
    from operators.measurement_file import load_measurement_file
    from priors.io import load_prior
    from solvers.base import solver_class

    if cfg.get("experiment_driver"):  # a preset whose ground truths invert.py cannot load (conf/experiment/dpr_fig2.yaml)
        raise UserInputError(f"this experiment preset does not run through invert.py; run `{cfg.experiment_driver}`")
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    check_seed(cfg.seed)
    quiet_frameworks()
    cfg.trainer.enable_progress_bar = progress_bars(cfg.trainer.get("enable_progress_bar"))
    set_fused_kernels(cfg.get("fused_kernels"))
    num_images, batch_size = _positive_int(cfg, "num_images"), _positive_int(cfg, "batch_size")
    _positive_int(cfg, "restarts")
    operator = instantiate(cfg.operator)
    requires_prior = solver_class(cfg.solver._target_).requires_prior
    prior = load_prior(choose_prior(cfg)) if requires_prior else None  # says which file and why
    if prior is not None:
        report_prior(cfg.prior.checkpoint, prior)
    if prior is not None and cfg.get("channels_last"):
        from common.precision import channels_last

        channels_last(prior)
    if prior is not None and tuple(prior.image_shape) != tuple(operator.input_shape):
        raise UserInputError(
            f"prior {cfg.prior.checkpoint} generates images of shape {tuple(prior.image_shape)} but the data/operator "
            f"expect {tuple(operator.input_shape)}; set data.image_size/data.channels to the prior's or pick another prior"
        )

    if cfg.measurements:
        dataset, operator = load_measurement_file(cfg.measurements, operator)
        dataset = dataset[:num_images]
    else:
        datamodule = instantiate(cfg.data)
        datamodule.prepare_data()
        datamodule.setup("test")
        test_set = datamodule.test_set
        if num_images > len(test_set):
            raise UserInputError(f"num_images={num_images} but the test split of data={HydraConfig.get().runtime.choices.data} "
                                 f"has {len(test_set)} images; lower num_images")
        dataset = Subset(test_set, range(num_images))
    solver = build_solver(cfg, prior, operator)
    solver.check_setup(operator)  # e.g. an LI encoder trained for another prior or operator: refuse before any run
    method = method_name(cfg, requires_prior)

    # a test-split subset's sample indices are its positions; a measurement file lists its own
    wanted = [int(d["index"]) for d in dataset] if cfg.measurements else list(range(len(dataset)))
    files = {"prior": cfg.prior.checkpoint, "init.checkpoint": cfg.init.get("checkpoint")} if requires_prior else {}
    config = OmegaConf.to_container(cfg, resolve=True)
    owner_token, todo = start_or_resume(out_dir, config, {**files, "measurements": cfg.measurements}, wanted)
    module = InversionModule(solver, operator, method, cfg.seed, out_dir, owner_token=owner_token)
    if todo:
        logger = make_logger(cfg)
        # our own sharding: Lightning's pads (or fails) when a rank has no image left
        trainer = instantiate_trainer(cfg.trainer, logger=logger, callbacks=[], use_distributed_sampler=False)
        loader = DataLoader(Subset(dataset, todo), batch_size=batch_size, sampler=ContiguousShards(len(todo)),
                            num_workers=cfg.get("num_workers", 0))
        trainer.predict(module, dataloaders=loader, return_predictions=False)  # returns once every rank is done
        if not trainer.is_global_zero:
            return None
        close_logger(logger)

    return write_inversion_results(out_dir, wanted, operator, method, config,
                                   save_measurements=cfg.save_measurements, pngs=bool(cfg.measurements))


@hydra.main(version_base="1.3", config_path="conf", config_name="invert")
def main(cfg: DictConfig) -> None:
    invert(cfg)


if __name__ == "__main__":
    handle_help("invert", __doc__)
    check_overrides("invert")
    main()
