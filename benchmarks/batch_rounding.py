"""Does an image's result depend on the batch it is solved in? Per operator (every conf/operator config, on 3×64×64
images, the face DCGAN's size), whether A(x) and the gradient of ||A(x) − y||² for one image are bit-identical when
that image is the last row of a batch of N and when it is alone. Where they are not, float32 rounding differs with the
batch, and a non-convex solve can amplify it: a part run with ``experiments.py --first-image K`` then reproduces a run
from 0 only up to that, and exactly only with its own ``--images``/``--first-image``.

    python benchmarks/batch_rounding.py [--batch 32] [--threads 1]

Writes benchmarks/results/batch_rounding.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import compose_invert, save_results  # noqa: E402
from common.cli import CONF_DIR  # noqa: E402
from common.instantiate import instantiate  # noqa: E402


def measurement_and_gradient(operator, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    ax = operator(x)
    ((ax - y).abs() ** 2).sum().backward()
    return ax.detach(), x.grad


def compare(name: str, batch: int) -> dict:
    operator = instantiate(compose_invert(f"operator={name}", "data.channels=3", "data.image_size=64").operator)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, 64, 64, generator=gen)
    y = operator(torch.rand(batch, 3, 64, 64, generator=gen)).detach()
    ax_batch, grad_batch = measurement_and_gradient(operator, x, y)
    ax_alone, grad_alone = measurement_and_gradient(operator, x[-1:], y[-1:])
    return {"operator": name, "batch": batch,
            "measurement_identical": torch.equal(ax_batch[-1:], ax_alone),
            "measurement_max_abs_diff": float((ax_batch[-1:] - ax_alone).abs().max()),
            "gradient_identical": torch.equal(grad_batch[-1:], grad_alone),
            "gradient_max_abs_diff": float((grad_batch[-1:] - grad_alone).abs().max())}


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32, help="rows of the batch (an 8-image part with 4 starts: 32)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [compare(p.stem, args.batch) for p in sorted((CONF_DIR / "operator").glob("*.yaml"))]
    print(f"| operator | A(x) identical (max diff) | gradient identical (max diff) |  batch {args.batch} vs alone")
    for r in rows:
        print(f"| {r['operator']} | {r['measurement_identical']} ({r['measurement_max_abs_diff']:.2g}) | "
              f"{r['gradient_identical']} ({r['gradient_max_abs_diff']:.2g}) |")
    save_results("batch_rounding", {"batch": args.batch, "threads": args.threads, "rows": rows})
    return rows


if __name__ == "__main__":
    main()
