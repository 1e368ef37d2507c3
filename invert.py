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

    kwargs = {"restarts": cfg.restarts}
    if getattr(get_class(cfg.solver._target_), "requires_prior", False):
        kwargs.update(prior=prior, init=instantiate_named(cfg.init), progress=bool(cfg.trainer.enable_progress_bar))
    solver = instantiate_named(cfg.solver, **kwargs)
    from solvers.twins import TwinSelection

    if TwinSelection.applies(cfg.twin_selection.rule, operator, prior):
        solver = TwinSelection(solver, cfg.twin_selection.rule, cfg.twin_selection.centre)
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
    import torch
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_class
    from torch.utils.data import DataLoader, Subset

    from common.cli import check_seed
    from common.instantiate import instantiate, instantiate_trainer

    from common.output import close_logger, make_logger, progress_bars, quiet_frameworks
    from common.runs import claim_run
    from evaluation.report import write_report
    from lightning_modules.inversion import ContiguousShards, InversionModule, check_resume, read_parts, results_config
    from operators.measurement_file import load_measurement_file
    from priors.io import load_prior

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
    requires_prior = getattr(get_class(cfg.solver._target_), "requires_prior", False)
    prior = load_prior(cfg.prior.checkpoint) if requires_prior else None
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
    check_init = getattr(getattr(solver, "init", None), "check", None)
    if check_init is not None:  # e.g. an LI encoder trained for another prior or operator: refuse before any run
        check_init(prior, operator)
    method = method_name(cfg, requires_prior)

    # a test-split subset's sample indices are its positions; a measurement file lists its own
    wanted = [int(d["index"]) for d in dataset] if cfg.measurements else list(range(len(dataset)))
    files = {"prior": cfg.prior.checkpoint, "init.checkpoint": cfg.init.get("checkpoint")} if requires_prior else {}
    identity = results_config(OmegaConf.to_container(cfg, resolve=True), {**files, "measurements": cfg.measurements})
    check_resume(out_dir, identity, record=False)  # refuse before writing anything
    owner_token = claim_run(out_dir, "invert.py run")
    check_resume(out_dir, identity)  # again as the owner, recording it in a fresh directory
    done = read_parts(out_dir)
    todo = [j for j, i in enumerate(wanted) if i not in done]
    if done:
        print(f"resuming in {out_dir}: {len(dataset) - len(todo)} of {len(dataset)} images already solved")
    module = InversionModule(solver, operator, method, cfg.seed, out_dir, owner_token=owner_token)
    if todo:
        logger = make_logger(cfg)
        # our own sharding: Lightning's pads (or fails) when a rank has no image left
        trainer = instantiate_trainer(cfg.trainer, logger=logger, callbacks=[], use_distributed_sampler=False)
        loader = DataLoader(Subset(dataset, todo), batch_size=batch_size, sampler=ContiguousShards(len(todo)),
                            num_workers=cfg.get("num_workers", 0))
        trainer.predict(module, dataloaders=loader, return_predictions=False)
        trainer.strategy.barrier()
        if not trainer.is_global_zero:
            return None
        close_logger(logger)

    results = read_parts(out_dir)
    records = [results[i] for i in wanted]
    rows = [r["row"] for r in records]
    x_hat = torch.stack([r["x_hat"] for r in records])
    y = torch.stack([r["y"] for r in records])
    torch.save({"index": torch.tensor(wanted), "x_hat": x_hat}, out_dir / "reconstructions.pt")
    if cfg.save_measurements:
        from operators import operator_state

        torch.save({"index": torch.tensor(wanted), "y": y, "operator": operator_state(operator)},
                   out_dir / "measurements.pt")
    grid = {"measurement": measurement_images(operator, y[:8])}
    if "x" in records[0]:
        grid = {"ground truth": torch.stack([r["x"] for r in records[:8]]), **grid}
    grid["reconstruction"] = x_hat[:8]
    grid = {k: v for k, v in grid.items() if v is not None}
    if cfg.measurements:
        save_pngs(x_hat, wanted, out_dir / "reconstructions")
    summary = write_report(out_dir, rows, method, OmegaConf.to_container(cfg, resolve=True), grid=grid)
    print((out_dir / "summary.md").read_text())
    print(f"results in {out_dir}")
    return summary


def measurement_images(operator, y):
    """Measurements as displayable images: log-magnitude for Fourier, as-is when image-shaped."""
    from evaluation.report import log_magnitude_image

    if operator.name == "fourier_pr":
        return log_magnitude_image(y)
    if y.dim() == 4 and y.shape[1] in (1, 3):
        return y.clamp(0, 1)
    return None


def save_pngs(images, indices, folder: Path) -> None:
    from torchvision.utils import save_image

    folder.mkdir(parents=True, exist_ok=True)
    for image, index in zip(images, indices):
        save_image(image, folder / f"{index:06d}.png")


@hydra.main(version_base="1.3", config_path="conf", config_name="invert")
def main(cfg: DictConfig) -> None:
    invert(cfg)


if __name__ == "__main__":
    handle_help("invert", __doc__)
    check_overrides("invert")
    main()
