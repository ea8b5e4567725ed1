"""The homology member's DIAMOND mode at growing size: time, memory and score per mode, and the full-shape
extrapolation; run after benchmarks/scaling.py (it reuses each size's prepared data and params.yaml).

    python benchmarks/homology_modes.py --train 2000 4000

Each mode runs the whole homology step (`cafa member --predictor homology --sensitivity M`: out-of-fold folds,
validation, the refit on the pool, test) under GNU time. The exponent of a mode is the slope of log(CPU seconds)
on log(proteins) between the two largest sizes (both queries and database grow, so an all-vs-all search tends to
2); the full shape is extrapolated from the largest size with it. The step's folder ends with the default mode's
predictions (params.yaml's homology.sensitivity runs last).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from results_md import write_section  # noqa: E402
from scaling import full_cpu_hours, last_slope, run_step, table  # noqa: E402

SECTION = "## Homology mode at Kaggle's shape"
MODES = ("fast", "default", "sensitive", "ultra-sensitive")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, nargs="+", default=[2000, 4000])
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "scaling")
    args = ap.parse_args()
    default = yaml.safe_load((ROOT / "params.yaml").read_text())["homology"]["sensitivity"]
    modes = [m for m in MODES if m != default] + [default]
    rows = []
    for n in args.train:
        folder = args.out / str(n)
        params = yaml.safe_load((folder / "params.yaml").read_text())
        proteins = sum(1 for line in open(params["data"]["train_fasta"]) if line.startswith(">"))
        proteins += sum(1 for line in open(params["data"]["test_fasta"]) if line.startswith(">"))
        for mode in modes:
            print(f"[{datetime.datetime.now():%H:%M:%S}] {n}: homology {mode}", flush=True)
            measured = run_step(
                "member", ("--predictor", "homology", "--sensitivity", mode), folder / "params.yaml", folder
            )
            metrics = json.loads((Path(params["outputs"]["predictions"]) / "homology" / "metrics.json").read_text())
            rows.append(
                {
                    "train": n,
                    "proteins": proteins,
                    "mode": mode,
                    **measured,
                    "val_f_w_mean": metrics["val_f_w_mean"],
                    "test_f_w_mean": metrics["test_f_w_mean"],
                }
            )
    frame = pd.DataFrame(rows)
    frame.to_csv(args.out / "homology_modes.csv", index=False)
    fits = []
    for mode, group in frame.groupby("mode", sort=False):
        group = group.sort_values("proteins")
        b, last = last_slope(group["proteins"], group["cpu_s"]), group.iloc[-1]
        fits.append({"mode": mode, "b": b, "full_cpu_hours": full_cpu_hours(last["cpu_s"], last["proteins"], b)})
    fits = pd.DataFrame(fits)
    print(frame.to_string(index=False))
    print(fits.to_string(index=False))
    text = (
        f"{SECTION}\n\nDate {datetime.date.today()}, {os.cpu_count()} cores, 24 GiB, no GPU, shared with other jobs "
        "(CPU seconds are the robust column). Command: `python benchmarks/homology_modes.py --train "
        + " ".join(map(str, args.train))
        + "` after `benchmarks/scaling.py`. Whole homology step (3 out-of-fold folds, validation, refit, test), "
        "Kaggle-shaped data from Swiss-Prot 2014 (see the scaling section).\n\n"
        + table(
            frame,
            {
                "train": "training proteins",
                "mode": "mode",
                "seconds": "wall s",
                "cpu_s": "CPU s",
                "peak_gb": "peak GB",
                "val_f_w_mean": "val weighted F-max",
                "test_f_w_mean": "test weighted F-max",
            },
            digits=3,
        )
        + "\n\nExponent of CPU time in proteins between the two largest sizes, and CPU hours at full shape "
        "(82,404 / 224,309) extrapolated with max(b, 1):\n\n"
        + table(fits, {"mode": "mode", "b": "b", "full_cpu_hours": "full shape, CPU hours"})
        + "\n"
    )
    write_section(text)


if __name__ == "__main__":
    main()
