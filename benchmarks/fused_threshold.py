"""Does compiling the projection kernels pay at the default ``invert.py`` run's size?

The default run (PRILO-MII, 64 images × 4 restarts × 2 starts = 512 rows; 256,000 elements at
layer 2) lies just below ``common.fused.MIN_NUMEL`` (2^18), so it runs the eager twins. This script
times that run end to end, each in a fresh process: with the eager twins (``fused_kernels=false``)
and with the kernels compiled at every size (``MIN_NUMEL = 0``, in an empty Inductor cache, so the
compilation is paid as on a user's first run). Prints the seconds of both and saves them.

    python benchmarks/fused_threshold.py [--prior outputs/priors/vae_mnist_embedded.pt]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import save_results  # noqa: E402

# runs invert.py as __main__ with every call large enough to compile (when fused_kernels=true)
RUN_INVERT = ("import runpy, sys; import common.fused as fused; fused.MIN_NUMEL = 0; "
              "sys.argv = ['invert.py', *sys.argv[1:]]; runpy.run_path('invert.py', run_name='__main__')")


def seconds_of_run(out: Path, overrides: list[str]) -> float:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "WANDB_MODE": "offline"}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", RUN_INVERT, *overrides, f"hydra.run.dir={out}"],
                       cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prior", default="outputs/priors/vae_mnist_embedded.pt")
    args = parser.parse_args(argv)
    common = [f"prior.checkpoint={args.prior}", "logger=csv"]
    with tempfile.TemporaryDirectory() as tmp:
        eager = seconds_of_run(Path(tmp) / "eager", [*common, "fused_kernels=false"])
        compiled = seconds_of_run(Path(tmp) / "compiled", [*common, "fused_kernels=true"])
    print(f"default invert.py run, end to end: eager twins {eager:.1f} s, compiled at every size "
          f"{compiled:.1f} s (compilation included), compiled / eager {compiled / eager:.3f}")
    results = {"prior": args.prior, "eager_s": eager, "compiled_every_size_s": compiled, "ratio": compiled / eager}
    save_results("fused_threshold", results)
    return results


if __name__ == "__main__":
    main()
