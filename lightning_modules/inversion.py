"""Solving inverse problems image by image inside Lightning's predict loop.

Each predict batch is measured (or read from a measurement file), solved with the
configured solver, scored, and written as one *part* file ``parts/<first index>_r<rank>.pt``
holding its report rows and reconstructions. Parts are written atomically, so they serve
three purposes at once: DDP gathering (every rank writes its own; rank zero merges and
de-duplicates by sample index the padding DistributedSampler adds), resume (a restarted
run skips indices that already have a part) and the final report.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from lightning.pytorch import LightningModule

from common.randomness import per_sample_normal
from lightning_modules.image_logging import log_image_grid
from operators.base import ForwardOperator

PARTS_DIR = "parts"


def write_atomic(obj, path: Path) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def read_parts(out_dir: Path) -> dict[int, dict]:
    """All finished images of a run directory: index → {"row", "x_hat", "y", "x"}."""
    done: dict[int, dict] = {}
    for part in sorted((out_dir / PARTS_DIR).glob("*.pt")):
        record = torch.load(part, map_location="cpu", weights_only=True)
        for j, row in enumerate(record["rows"]):
            tensors = {k: record[k][j] for k in ("x_hat", "y", "x") if record.get(k) is not None}
            done.setdefault(int(row["index"]), {"row": row, **tensors})  # DDP padding repeats an index
    return done


class InversionModule(LightningModule):
    """Measure, solve, score and store every predict batch.

    Batches are ``{"index", "image"}`` (ground truth: measured here with per-image noise
    from (seed, index)) or ``{"index", "measurement"}`` (file-input mode, no ground truth).
    """

    def __init__(self, solver, operator: ForwardOperator, method: str, seed: int, out_dir: str | Path,
                 compute_metrics: bool = True):
        super().__init__()
        self.solver = solver
        self.operator = operator
        self.method = method
        self.seed = int(seed)
        self.out_dir = Path(out_dir)
        self.compute_metrics = compute_metrics
        prior = getattr(solver, "prior", None)
        # registered so Lightning moves it to the device; frozen, never trained
        self.prior = prior.eval().requires_grad_(False) if prior is not None else None

    def measure(self, batch) -> torch.Tensor:
        if "measurement" in batch:
            return batch["measurement"]
        x, index = batch["image"], batch["index"].tolist()
        eps = None
        if self.operator.noise_std > 0:
            eps = per_sample_normal(self.operator.measurement_shape, self.seed, "measurement_noise", index,
                                    device=x.device, dtype=x.dtype)
        return self.operator.measure(x, eps)

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
        parts = self.out_dir / PARTS_DIR
        parts.mkdir(parents=True, exist_ok=True)
        write_atomic(record, parts / f"{index[0]:08d}_r{self.global_rank}.pt")
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
