"""Growth of the main chain with data size: every step of `main` (prepare ... predict, the tiny offline encoder)
on Kaggle-shaped data drawn from Swiss-Prot 2014 (benchmarks/kaggle_shape.py) at several sizes; wall time,
CPU time and peak RSS per step, a fitted exponent per step, a log-log plot and the extrapolation to full shape.

    make tiny; python benchmarks/scaling.py --train 500 1000 2000 4000

Each step runs alone as `python -m pipelines.<step> --params-file <size>/params.yaml` under GNU time, with the
same resolved params as `main` (params.yaml, the data block pointed at the drawn files, every output under
outputs/bench/scaling/<size>/, its own SQLite store). The prepared reference cache is shared (reference.out).
Measured rows accumulate in <out>/steps.csv (a size already measured is skipped), so the sizes can be run in
several sittings. The exponent b of a step is the least-squares slope of log(seconds) on log(proteins), proteins
= training + test; the full-shape estimate is the largest measured point times (306,713 / its proteins)^b.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from kaggle_shape import KAGGLE_TEST, KAGGLE_TRAIN, draw, load_pool, test_size, write_kaggle  # noqa: E402
from results_md import write_section  # noqa: E402

from cafa_mlflow.workflows.chain import STEPS  # noqa: E402

SECTION = "## Scaling to Kaggle's shape (issue 22)"
FULL = KAGGLE_TRAIN + KAGGLE_TEST


def size_params(folder: Path, data: dict, esm: str, reference_out: Path) -> Path:
    """params.yaml with the data block and every output moved under `folder`; returns its path."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(data)
    out = folder / "outputs"
    params["prepare"]["out"] = str(out / "prepared")
    params["outputs"] = {"predictions": str(out / "predictions"), "metrics": str(out / "metrics")}
    params["embed"].update(esm_model=str(esm), out=str(out / "embeddings"))
    params["homology"]["out"] = str(out / "homology")
    params["reference"]["out"] = str(reference_out)
    params["evaluate"]["out_json"] = str(out / "metrics" / "test.json")
    params["predict"]["out"] = str(out / "submission.tsv")
    params["tracking"]["uri"] = f"sqlite:///{folder / 'mlflow.db'}"
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def run_step(module: str, extra: tuple, params_file: Path, cwd: Path) -> dict:
    """Wall, CPU and peak RSS (the largest process of the step, DIAMOND included) of one step under GNU time."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as stats:
        cmd = ["/usr/bin/time", "-f", "%M %U %S", "-o", stats.name, sys.executable, "-m", f"pipelines.{module}"]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        proc = subprocess.run([*cmd, "--params-file", str(params_file), *extra], cwd=cwd, env=env)
        seconds = time.perf_counter() - t0
        peak_kb, user, system = stats.read().split()[-3:]
    if proc.returncode != 0:
        raise SystemExit(f"step {module} {' '.join(extra)} failed (exit {proc.returncode}); see above")
    return {
        "seconds": seconds,
        "cpu_s": float(user) + float(system),
        "peak_gb": int(peak_kb) / 1024**2,
        "load_before": load,
        "load_after": os.getloadavg()[0],
    }


def measure(n_train: int, out: Path, esm: Path, reference_out: Path, pool: pd.DataFrame) -> pd.DataFrame:
    folder = out / str(n_train)
    folder.mkdir(parents=True, exist_ok=True)
    train, test = draw(pool, n_train, test_size(n_train))
    data = write_kaggle(train, test, folder / "kaggle")
    params_file = size_params(folder, data, esm, reference_out)
    rows = []
    for label, module, extra in STEPS:
        print(f"[{datetime.datetime.now():%H:%M:%S}] {n_train}: {label}", flush=True)
        rows.append(
            {"train": n_train, "test": len(test), "step": label, **run_step(module, extra, params_file, folder)}
        )
        print(f"    {rows[-1]['seconds']:.1f} s, {rows[-1]['peak_gb']:.2f} GB", flush=True)
    return pd.DataFrame(rows)


def fit(steps: pd.DataFrame) -> pd.DataFrame:
    """Per step: the exponent of time and of peak RSS in proteins, and the full-shape extrapolation."""
    steps = steps.assign(proteins=steps["train"] + steps["test"])
    rows = []
    for step, group in steps.groupby("step", sort=False):
        x = np.log(group["proteins"].to_numpy(float))
        b_time = np.polyfit(x, np.log(group["seconds"]), 1)[0]
        b_rss = np.polyfit(x, np.log(group["peak_gb"]), 1)[0]
        last = group.iloc[group["proteins"].argmax()]
        scale = FULL / last["proteins"]
        rows.append(
            {
                "step": step,
                "time_exponent": b_time,
                "rss_exponent": b_rss,
                "full_hours_2core": last["seconds"] * scale**b_time / 3600,
                "full_peak_gb": last["peak_gb"] * scale ** max(b_rss, 0.0),
            }
        )
    return pd.DataFrame(rows)


def plot(steps: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = steps.assign(proteins=steps["train"] + steps["test"])
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 5))
    for step, group in steps.groupby("step", sort=False):
        ax_t.loglog(group["proteins"], group["seconds"], "o-", label=step)
        ax_m.loglog(group["proteins"], group["peak_gb"], "o-", label=step)
    for ax, what in ((ax_t, "wall seconds"), (ax_m, "peak RSS (GB)")):
        ax.set_xlabel("proteins (training + test)")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
    ax_t.legend(fontsize=8)
    fig.suptitle("main chain per step, tiny encoder, 2 cores")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def table(frame: pd.DataFrame, columns: dict) -> str:
    lines = ["| " + " | ".join(columns.values()) + " |", "|" + "---|" * len(columns)]
    for _, row in frame.iterrows():
        cells = [f"{row[c]:.2f}" if isinstance(row[c], float) else f"{row[c]:,}" for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(steps: pd.DataFrame, fits: pd.DataFrame, note: str) -> str:
    wide = steps.pivot_table(index="step", columns="train", values="seconds", sort=False).reset_index()
    wide.columns = [str(c) for c in wide.columns]
    rss = steps.pivot_table(index="step", columns="train", values="peak_gb", sort=False).reset_index()
    rss.columns = [str(c) for c in rss.columns]
    sizes = ", ".join(f"{t:,} / {s:,}" for t, s in steps[["train", "test"]].drop_duplicates().to_numpy())
    return (
        f"{SECTION}\n\nDate {datetime.date.today()}, {os.cpu_count()} cores ({platform.processor() or 'x86_64'}), "
        f"24 GiB, no GPU. Command: `python benchmarks/scaling.py --train ...`. Sizes (training / test): {sizes}.\n"
        "Tiny offline encoder, params.yaml defaults (reference member included), each step alone under GNU time.\n\n"
        "Wall seconds per step (columns: training proteins):\n\n"
        + table(wide, {c: c for c in wide.columns})
        + "\n\nPeak RSS (GB) per step:\n\n"
        + table(rss, {c: c for c in rss.columns})
        + "\n\nFitted exponents (time and RSS ~ proteins^b) and the extrapolation to 82,404 / 224,309 on this machine:\n\n"
        + table(
            fits,
            {
                "step": "step",
                "time_exponent": "time b",
                "rss_exponent": "RSS b",
                "full_hours_2core": "full shape, hours (2 cores)",
                "full_peak_gb": "full shape, peak GB",
            },
        )
        + "\n\n![scaling](scaling.png)\n"
        + (f"\n{note}\n" if note else "")
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, nargs="+", default=[500, 1000, 2000, 4000])
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "scaling")
    ap.add_argument("--esm", type=Path, default=ROOT / "outputs" / "esm2_tiny.pt")
    ap.add_argument("--reference-out", type=Path, default=ROOT / "outputs" / "reference")
    ap.add_argument("--note", default="")
    ap.add_argument("--report-only", action="store_true", help="only fit, plot and write RESULTS.md")
    args = ap.parse_args()
    csv = args.out / "steps.csv"
    steps = pd.read_csv(csv) if csv.is_file() else pd.DataFrame()
    if not args.report_only:
        pool = load_pool()
        for n in args.train:
            if len(steps) and n in set(steps["train"]):
                continue
            steps = pd.concat([steps, measure(n, args.out, args.esm.resolve(), args.reference_out.resolve(), pool)])
            steps.to_csv(csv, index=False)
    fits = fit(steps)
    print(fits.to_string(index=False))
    plot(steps, ROOT / "benchmarks" / "scaling.png")
    write_section(report(steps, fits, args.note))


if __name__ == "__main__":
    main()
