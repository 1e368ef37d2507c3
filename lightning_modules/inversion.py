"""Solving inverse problems image by image inside Lightning's predict loop.

Each predict batch is measured (or read from a measurement file), solved with the
configured solver, scored, and written as one *part* file ``parts/<first index>_r<rank>.pt``
holding its report rows and reconstructions. Parts are written atomically, so they serve
three purposes at once: DDP gathering (every rank writes its own; rank zero merges and
de-duplicates by sample index), resume (a restarted run skips indices that already have a
part) and the final report.

Resume is allowed only into a run directory whose ``results_config.json`` — everything that
determines the results: solver, init, operator, data, seed, restarts, twin selection, precision and the SHA-256 of
every file read (prior, LI encoder, measurement file) — equals the new run's
(:func:`check_resume`). Only the owner of the run directory's lock writes parts
(:class:`common.runs.RunLock`); DDP workers exit when the owner dies.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

import torch
from lightning.pytorch import LightningModule
from torch.utils.data import Sampler

from common.atomic import torch_save, write_json
from common.checkpoint import load_tensors
from common.errors import UserInputError
from common.randomness import per_sample_normal
from common.runs import claim_run, exit_with_parent, leave_process_group, owns_run
from lightning_modules.image_logging import log_image_grid
from operators.base import ForwardOperator
from solvers.base import Solver

PARTS_DIR = "parts"
RESULTS_CONFIG = "results_config.json"
#: data keys that change how images are served, not which images or their values
DATA_EXECUTION_KEYS = ("batch_size", "num_workers", "download")


def results_config(config: Mapping, files: Mapping[str, str | os.PathLike | None]) -> dict:
    """The part of a resolved invert config that determines the results, with each file read
    (``files``: ``{"prior": path, "init.checkpoint": path, "measurements": path}``, None where
    unused) replaced by its SHA-256, so moving a file does not matter but changing it does.

    Left out, since they do not change which image gets which result: ``num_images`` (a resume
    may extend a run), ``batch_size``, devices and strategy (within the bound stated in
    docs/ARCHITECTURE.md), workers, logging, progress bars, ``fused_kernels`` (rounding)."""
    from common.runs import file_sha256

    out = {key: config[key] for key in ("solver", "operator", "seed", "restarts")}
    if config.get("twin_selection") is not None:
        out["twin_selection"] = config["twin_selection"]
    out["data"] = {k: v for k, v in config["data"].items() if k not in DATA_EXECUTION_KEYS}
    out["precision"] = str(config["trainer"].get("precision"))
    if files.get("prior") is not None:
        out["init"] = dict(config["init"])
        out["prior"] = {"sha256": file_sha256(files["prior"])}
        if files.get("init.checkpoint") is not None:
            out["init"]["checkpoint"] = {"sha256": file_sha256(files["init.checkpoint"])}
    if files.get("measurements") is not None:
        out["measurements"] = {"sha256": file_sha256(files["measurements"])}
    return json.loads(json.dumps(out))  # plain JSON types, as read back from the file


def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, Mapping):
        items = {}
        for k, v in value.items():
            items.update(_flatten(v, f"{prefix}{k}."))
        return items or {prefix.rstrip("."): {}}
    return {prefix.rstrip("."): value}


def differing_keys(a: Mapping, b: Mapping) -> list[str]:
    """Dotted keys whose values differ between two nested configs (missing counts as differing)."""
    fa, fb, missing = _flatten(a), _flatten(b), object()
    return sorted(k for k in fa.keys() | fb.keys() if fa.get(k, missing) != fb.get(k, missing))


def check_resume(out_dir: Path, config: dict, record: bool = True) -> None:
    """Refuse (one line) to add to a run directory that holds results of another configuration;
    on a fresh directory record ``config`` in ``results_config.json`` (with ``record``; without,
    only check: nothing is written)."""
    path = out_dir / RESULTS_CONFIG
    has_results = any((out_dir / PARTS_DIR).glob("*.pt")) or (out_dir / "summary.json").is_file()
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
        except ValueError:
            raise UserInputError(f"{path} is not valid JSON; pass a new hydra.run.dir") from None
        keys = differing_keys(stored, config)
        if keys:
            shown = ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
            raise UserInputError(
                f"{out_dir} holds results of a different configuration (differs in {shown}; see {path.name}); "
                f"resume only with the same settings, or pass a new hydra.run.dir"
            )
        return
    if has_results:
        raise UserInputError(
            f"{out_dir} holds results without a {RESULTS_CONFIG} to compare with (written by an older version); "
            f"pass a new hydra.run.dir"
        )
    if record:
        write_json(path, config)


def start_or_resume(out_dir: Path, config: Mapping, files: Mapping[str, str | os.PathLike | None],
                    wanted: list[int], what: str = "invert.py run", extra: Mapping | None = None) -> tuple[str, list[int]]:
    """Make this process the owner of ``out_dir`` for a run of the resolved ``config`` reading ``files``
    (see :func:`results_config`; ``extra``: further settings that determine the results, e.g. the oracle
    bound's), refusing (one line, before anything is written) a directory that holds results of another
    configuration; returns the owner's token and the positions in ``wanted`` (sample indices) that have
    no part yet."""
    identity = {**results_config(config, files), **json.loads(json.dumps(dict(extra or {})))}
    check_resume(out_dir, identity, record=False)  # refuse before writing anything
    owner_token = claim_run(out_dir, what)
    check_resume(out_dir, identity)  # again as the owner, recording it in a fresh directory
    done = read_parts(out_dir)
    todo = [j for j, i in enumerate(wanted) if i not in done]
    if done:
        print(f"resuming in {out_dir}: {len(wanted) - len(todo)} of {len(wanted)} images already solved")
    return owner_token, todo


class ContiguousShards(Sampler):
    """Indices ``0..n-1`` split into ``world_size`` contiguous shards, this process's shard
    (the rank is read when iterating, so a sampler built before DDP starts works in every rank).
    Unlike Lightning's distributed samplers it neither pads nor fails when a rank gets no index."""

    def __init__(self, n: int):
        self.n = n

    def _shard(self) -> range:
        import torch.distributed as dist

        distributed = dist.is_available() and dist.is_initialized()
        rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
        per, extra = divmod(self.n, world)
        start = rank * per + min(rank, extra)
        return range(start, start + per + (rank < extra))

    def __iter__(self):
        return iter(self._shard())

    def __len__(self) -> int:
        return len(self._shard())


def part_path(out_dir: Path, first_index: int, rank: int = 0) -> Path:
    """The part file of the batch starting at sample ``first_index``, written by process ``rank``."""
    return Path(out_dir) / PARTS_DIR / f"{first_index:08d}_r{rank}.pt"


def read_parts(out_dir: Path) -> dict[int, dict]:
    """All finished images of a run directory: index → {"row", "x_hat", "y", "x"}."""
    done: dict[int, dict] = {}
    for part in sorted((out_dir / PARTS_DIR).glob("*.pt")):
        record = load_tensors(part)
        for j, row in enumerate(record["rows"]):
            tensors = {k: record[k][j] for k in ("x_hat", "y", "x") if record.get(k) is not None}
            done.setdefault(int(row["index"]), {"row": row, **tensors})  # DDP padding repeats an index
    return done


def measure_images(operator, x: torch.Tensor, indices, seed: int) -> torch.Tensor:
    """The measurements of images ``x`` as invert.py takes them: ``operator.measure`` with its noise
    drawn per (seed, image index), so an image's noise does not depend on its batch."""
    eps = None
    if operator.noise_std > 0:
        eps = per_sample_normal(operator.measurement_shape, seed, "measurement_noise", list(indices),
                                device=x.device, dtype=x.dtype)
    return operator.measure(x, eps)


class InversionModule(LightningModule):
    """Measure, solve, score and store every predict batch.

    Batches are ``{"index", "image"}`` (ground truth: measured here with per-image noise
    from (seed, index)) or ``{"index", "measurement"}`` (file-input mode, no ground truth).
    """

    def __init__(self, solver: Solver, operator: ForwardOperator, method: str, seed: int, out_dir: str | Path,
                 compute_metrics: bool = True, owner_token: str | None = None):
        super().__init__()
        self.owner_token = owner_token  # parts are written only while the run directory's lock names it
        self.launcher_pid = os.getpid()
        self.allow_zero_length_dataloader_with_multiple_devices = True  # more processes than images
        self.solver = solver
        self.operator = operator
        self.method = method
        self.seed = int(seed)
        self.out_dir = Path(out_dir)
        self.compute_metrics = compute_metrics
        prior = solver.prior
        # registered so Lightning moves it to the device; frozen, never trained
        self.prior = prior.eval().requires_grad_(False) if prior is not None else None

    def measure(self, batch) -> torch.Tensor:
        if "measurement" in batch:
            return batch["measurement"]
        return measure_images(self.operator, batch["image"], batch["index"].tolist(), self.seed)

    def on_predict_start(self) -> None:
        if os.getpid() != self.launcher_pid:  # a spawned DDP worker: die with the process that owns the run
            exit_with_parent()

    def teardown(self, stage: str) -> None:
        # not on_predict_end: Lightning skips the loop's hooks on a rank whose shard is empty
        leave_process_group()  # every rank's parts are written once this returns

    def predict_step(self, batch, batch_idx):
        index = batch["index"].tolist()
        y = self.measure(batch)
        start = time.perf_counter()
        with torch.inference_mode(False), torch.enable_grad():
            result = self.solver.solve(self.operator, y.clone(), index, self.seed)
        seconds = (time.perf_counter() - start) / len(index)
        x = batch.get("image")
        scores = {}
        if x is not None and self.compute_metrics:
            from evaluation.alignment import aligned_metrics
            from evaluation.metrics import image_metrics

            with torch.no_grad():
                x_hat = result.x.to(x)
                scores = {**image_metrics(x_hat, x), **aligned_metrics(self.operator, x_hat, x)}  # aligned: oracle
                scores = {k: v.tolist() for k, v in scores.items()}
        rows = []
        for j, i in enumerate(index):
            rows.append({"index": i, "method": self.method,
                         **{k: (float("nan") if result.failed[j] else scores[k][j]) for k in scores},
                         "measurement_error": float(result.measurement_error[j]),
                         "seconds": seconds, "status": "failed" if bool(result.failed[j]) else "ok"})
        record = {"rows": rows, "x_hat": result.x.detach().cpu(), "y": y.detach().cpu(),
                  "x": None if x is None else x.detach().cpu()}
        if self.owner_token is not None and not owns_run(self.out_dir, self.owner_token):
            raise RuntimeError(f"{self.out_dir} has been taken over by another run; this one stops without writing")
        torch_save(record, part_path(self.out_dir, index[0], self.global_rank))
        self._log_batch(batch_idx, result, x)
        return None

    def _log_batch(self, batch_idx, result, x) -> None:
        """Per-stage measurement-error curves and an image grid of the first batch (rank zero)."""
        if batch_idx != 0 or self.logger is None or not self.trainer.is_global_zero:
            return
        step = 0
        for stage, curve in result.history.items():
            for value in curve[:: max(1, len(curve) // 50)]:
                self.logger.log_metrics({"inversion/measurement_error": value, f"inversion/stage/{stage}": value},
                                        step=step)
                step += 1
        images = result.x if x is None else torch.cat([x[:8], result.x[:8].to(x)])
        log_image_grid(self, "inversion/ground_truth_vs_reconstruction", images, nrow=min(8, len(result.x)))
