"""Wall-clock time of the default training run (`python train.py`: VAE on embedded MNIST).

Runs train.py in a subprocess with exactly the defaults (W&B offline logger and progress bars
included; plus ``--overrides``), writing into a temporary run directory and export path so the
prior in outputs/priors is not replaced, and reports wall seconds, the epochs in the final
checkpoint and whether the prior was exported. Run it on an otherwise idle machine.

    python benchmarks/train_time.py
    python benchmarks/train_time.py --overrides model=vae_dpr

Results: benchmarks/results/train_time.json.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import save_results  # noqa: E402
from common.checkpoint import read_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--overrides", nargs="*", default=[], help="extra Hydra overrides for train.py")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        command = [sys.executable, "train.py", f"hydra.run.dir={run_dir}", f"export_path={tmp}/prior.pt",
                   *args.overrides]
        start = time.perf_counter()
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"train.py failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
        epochs = read_checkpoint(run_dir / "checkpoints" / "last.ckpt", "checkpoint")["epoch"] + 1
        exported = (Path(tmp) / "prior.pt").is_file()
    print(f"python train.py {' '.join(args.overrides)}: {seconds:.1f} s wall on {os.cpu_count()} cores, "
          f"{epochs} epochs, prior exported: {exported}")
    return save_results("train_time", {"overrides": args.overrides, "seconds": seconds, "epochs": epochs,
                                       "cpu_count": os.cpu_count(), "prior_exported": exported})


if __name__ == "__main__":
    main()
