"""Redraw the plots of results files of benchmarks/experiments.py (or of merge/concat_results.py) from their saved
rows, e.g. after a change to how sweeps are drawn. Nothing is solved or recomputed, and no table or results file is
written:

    python benchmarks/replot.py benchmarks/results/ilo_small.json benchmarks/results/rtil_figs_stylegan2.json

FILE.json's plots are redrawn, replacing those of the same names: ``FILE_<task>.png`` for task sweeps (ILO section 4,
the RTIL figures), ``FILE_<operator>_<psnr|ssim>.png`` for measurement sweeps (PRILO / DPR figure 3) and
``FILE_<init>.png`` for PRILO table 3. The titles name the file. Results files of other kinds (PRILO table 1, DPR
figure 2, the hyperparameter sweeps) are refused: their subcommands draw them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.merge_results import load_payload, sweep_kind, write_plots  # noqa: E402
from common.errors import UserInputError, exit_on_user_error  # noqa: E402


@exit_on_user_error
def main(argv=None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="results files (benchmarks/results/<name>.json)")
    args = parser.parse_args(argv)
    payloads = {}
    for name in args.files:  # every file is checked before any plot is replaced
        path = Path(name)
        if path.suffix != ".json":
            raise UserInputError(f"{name}: give the results file (<name>.json); its plots are <name>_*.png")
        payloads[path] = load_payload(name)
        try:
            sweep_kind(payloads[path]["rows"])
        except UserInputError as err:
            raise UserInputError(f"{name}: {err}") from None
    for path, payload in payloads.items():
        write_plots(payload["rows"], path.with_suffix(""))
    return list(payloads)


if __name__ == "__main__":
    main()
