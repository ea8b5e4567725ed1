"""Growth of the main chain with data size: every step of `main` (prepare ... predict, the tiny offline encoder)
on Kaggle-shaped data drawn from Swiss-Prot 2014 (benchmarks/kaggle_shape.py) at several sizes; wall time,
CPU time and peak RSS per step, a fitted exponent per step, a log-log plot and the extrapolation to full shape.

    make tiny; python benchmarks/scaling.py --train 500 1000 2000 4000

Each step runs alone as `python -m pipelines.<step> --params-file <size>/params.yaml` under GNU time, with the
same resolved params as `main` (params.yaml, the data block pointed at the drawn files, every output under
outputs/bench/scaling/<size>/, its own SQLite store). The prepared reference cache is shared (reference.out).
Measured rows accumulate in <out>/steps.csv (a size already measured is skipped), so the sizes can be run in
several sittings. The exponent b of a step is the slope of log(seconds) on log(proteins), proteins = training +
test, over all sizes and over the last doubling; `fit` says how the full shape (306,713 proteins) is extrapolated.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from kaggle_shape import KAGGLE_TEST, KAGGLE_TRAIN, draw, load_pool, test_size, write_kaggle  # noqa: E402
from results_md import write_section  # noqa: E402
from timed import run_timed  # noqa: E402

from cafa_mlflow.workflows.chain import STEPS  # noqa: E402

SECTION = "## Scaling to Kaggle's shape"
FULL = KAGGLE_TRAIN + KAGGLE_TEST
CORES_BIG = 32  # the larger machine of the extrapolation (Amdahl: the measured 2-core parallel share scales)


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
    load = os.getloadavg()[0]
    args = ["-m", f"pipelines.{module}", "--params-file", str(params_file), *extra]
    try:
        measured = run_timed(args, cwd=cwd, capture=False, ok=(0,))
    except RuntimeError as err:
        raise SystemExit(f"step {module} {' '.join(extra)} failed; see above ({err})") from None
    return {
        "seconds": measured["seconds"],
        "cpu_s": measured["cpu_s"],
        "peak_gb": measured["peak_mb"] / 1024,
        "load_before": load,
        "load_after": os.getloadavg()[0],
    }


def chain_steps(predict_shard: str | None = None) -> list[tuple]:
    """The chain's (label, module, extra flags); with `predict_shard` 'i/N', predict scores only that shard of
    the test FASTA (`cafa predict --shard i/N`), labelled 'predict i/N'."""
    if not predict_shard:
        return list(STEPS)
    shard = (f"predict {predict_shard}", "predict", ("--shard", predict_shard))
    return [shard if label == "predict" else (label, module, extra) for label, module, extra in STEPS]


def measure(
    n_train: int,
    out: Path,
    esm: Path,
    reference_out: Path,
    pool: pd.DataFrame,
    only: list[str] | None = None,
    predict_shard: str | None = None,
) -> pd.DataFrame:
    """Run the chain's steps (or `only` these) at one size; a step already in <size>/steps_partial.csv is not run
    again, so a long size (e.g. the full shape) can be measured over several sittings."""
    folder = out / str(n_train)
    folder.mkdir(parents=True, exist_ok=True)
    train, test = draw(pool, n_train, test_size(n_train))
    data = write_kaggle(train, test, folder / "kaggle")
    params_file = size_params(folder, data, esm, reference_out)
    partial = folder / "steps_partial.csv"  # kept if a later step is cut
    rows = pd.read_csv(partial).to_dict("records") if partial.is_file() else []
    for label, module, extra in chain_steps(predict_shard):
        if (only and label.split()[0] not in only) or any(row["step"] == label for row in rows):
            continue
        print(f"[{datetime.datetime.now():%H:%M:%S}] {n_train}: {label}", flush=True)
        rows.append(
            {"train": n_train, "test": len(test), "step": label, **run_step(module, extra, params_file, folder)}
        )
        print(f"    {rows[-1]['seconds']:.1f} s, {rows[-1]['peak_gb']:.2f} GB", flush=True)
        # read again before writing: another sitting (other steps, same size) may have added rows meanwhile
        done = pd.read_csv(partial).to_dict("records") if partial.is_file() else []
        rows = [*done, *(row for row in rows if all(row["step"] != other["step"] for other in done))]
        pd.DataFrame(rows).to_csv(partial, index=False)
    return pd.DataFrame(rows)


def remeasure(steps: pd.DataFrame, labels: list[str], out: Path, threads: int, sizes: list[int]) -> pd.DataFrame:
    """Run `labels` (steps of the chain) again at `sizes` (measured already), replacing their rows; the
    embedding cache is removed first so that embed computes again."""
    chain = {label: (module, extra) for label, module, extra in STEPS}
    steps = steps.assign(threads=steps["threads"] if "threads" in steps else 0)
    for n in sizes:
        folder = out / str(n)
        for label in labels:
            if label == "embed":
                shutil.rmtree(folder / "outputs" / "embeddings", ignore_errors=True)
            print(f"[{datetime.datetime.now():%H:%M:%S}] {n}: {label} again", flush=True)
            measured = run_step(*chain[label], folder / "params.yaml", folder)
            at = (steps["train"] == n) & (steps["step"] == label)
            for key, value in {**measured, "threads": threads}.items():
                steps.loc[at, key] = value
            print(f"    {measured['seconds']:.1f} s, {measured['peak_gb']:.2f} GB", flush=True)
    return steps


def last_slope(proteins: np.ndarray, values: np.ndarray) -> float:
    """Slope of log(values) on log(proteins) between the two largest sizes (`proteins` ascending)."""
    x, y = np.log(np.asarray(proteins, float)), np.log(np.asarray(values, float))
    return float((y[-1] - y[-2]) / (x[-1] - x[-2]))


def full_cpu_hours(cpu_s: float, proteins: int, exponent: float) -> float:
    """CPU hours at full shape from `cpu_s` at `proteins`, growing with max(exponent, 1): a fixed cost that still
    hides a step's linear growth at small sizes is bounded from above that way."""
    return cpu_s * (FULL / proteins) ** max(exponent, 1.0) / 3600


def fit(steps: pd.DataFrame) -> pd.DataFrame:
    """Per step: exponents of CPU time and peak RSS in proteins (least squares over every size, and the local
    slope of the last doubling), and the full-shape extrapolation from the largest size.

    CPU seconds, not wall: other jobs shared the 2 cores, which stretches wall time by the load. CPU time uses
    the last doubling's exponent, but at least 1: a step whose fixed cost still hides its linear growth at these
    sizes (DIAMOND's pass over a database, model logging) is bounded from above that way, and a super-linear
    step keeps its own exponent. Wall time on c cores (Amdahl): the share f of the step's CPU work that runs on
    both cores comes from its quietest measurement (wall = cpu x (1 - f + f / 2)), and wall on c cores =
    cpu x (1 - f + f / c). RSS uses the last doubling's exponent (fixed interpreter and library memory make it
    small at these sizes: the probes of "Full-shape memory per step" measure the in-memory steps directly)."""
    steps = steps.assign(proteins=steps["train"] + steps["test"])
    rows = []
    for step, group in steps.groupby("step", sort=False):
        group = group.sort_values("proteins")
        x = np.log(group["proteins"].to_numpy(float))
        t, m = np.log(group["cpu_s"].to_numpy(float)), np.log(group["peak_gb"].to_numpy(float))
        last_time = last_slope(group["proteins"], group["cpu_s"])
        last_rss = last_slope(group["proteins"], group["peak_gb"])
        last, quiet = group.iloc[-1], group.loc[group["load_before"].idxmin()]
        scale = FULL / last["proteins"]
        cpu_hours = full_cpu_hours(last["cpu_s"], last["proteins"], last_time)
        cores = float(np.clip(quiet["cpu_s"] / quiet["seconds"], 1.0, 2.0))
        parallel = 2 * (1 - 1 / cores)  # share of the CPU work that ran on both cores
        rows.append(
            {
                "step": step,
                "time_exponent": np.polyfit(x, t, 1)[0],
                "time_exponent_last": last_time,
                "rss_exponent": np.polyfit(x, m, 1)[0],
                "rss_exponent_last": last_rss,
                "parallel_share": parallel,
                "full_cpu_hours": cpu_hours,
                "full_hours_2core": cpu_hours * (1 - parallel / 2),
                "full_hours_32core": cpu_hours * (1 - parallel + parallel / CORES_BIG),
                "full_peak_gb": last["peak_gb"] * scale ** max(last_rss, 0.0),
            }
        )
    return pd.DataFrame(rows)


# ESM-2 sizes: (parameters, residues per CPU-second of our forward, fp32, tcmalloc, 2-core Xeon: RESULTS.md
# "Embedding forward: ours vs fair-esm"; 650M and 3B were not measured with our forward: fair-esm's 650M rate
# (82 residues/s on 2 cores, measured with fair-esm's forward on 2026-11-23) x 1.4 (our speed-up at 150M long units), 3B = 650M x 650/2,800 by FLOPs)
ESM_SIZES = {
    "8M": (7.5e6, 4169.0, "measured"),
    "35M": (33.5e6, 1122.0, "measured"),
    "150M": (148e6, 264.0, "measured"),
    "650M": (651e6, 82 * 1.4 / 2, "estimated"),
    "3B": (2.8e9, 82 * 1.4 / 2 * 651 / 2800, "estimated"),
}
EMBED_RESIDUES = 104_670_761  # the full-shape draw's residues after balanced truncation to 1,022
GPU_BF16_FLOPS = 989e12 * 0.25  # an H100's dense bf16 peak at an assumed 25% utilisation (not measured here)


def embed_projection(residues: float, cores: int = CORES_BIG) -> pd.DataFrame:
    """Hours to embed `residues` with each ESM-2 size: this machine (2 cores), `cores` CPU cores (linear in
    cores: the forward is matmul-bound), and one GPU (2 x parameters FLOPs per residue at GPU_BF16_FLOPS)."""
    rows = []
    for name, (n_params, per_cpu_s, source) in ESM_SIZES.items():
        rows.append(
            {
                "model": name,
                "rate": source,
                "hours_2core": residues / (per_cpu_s * 2) / 3600,
                f"hours_{cores}core": residues / (per_cpu_s * cores) / 3600,
                "hours_gpu": residues * 2 * n_params / GPU_BF16_FLOPS / 3600,
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
        ax_t.loglog(group["proteins"], group["cpu_s"], "o-", label=step)
        ax_m.loglog(group["proteins"], group["peak_gb"], "o-", label=step)
    x = np.array([steps["proteins"].min(), steps["proteins"].max()], dtype=float)
    ax_t.loglog(x, 20 * x / x[0], "k--", lw=1, label="slope 1 (linear)")
    for ax, what in ((ax_t, "CPU seconds"), (ax_m, "peak RSS (GB)")):
        ax.set_xlabel("proteins (training + test)")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
    ax_t.legend(fontsize=8)
    fig.suptitle("main chain per step, tiny encoder, 2 cores")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def table(frame: pd.DataFrame, columns: dict, digits: int = 2) -> str:
    """`columns` (frame column -> header) of `frame` as a markdown table, floats to `digits` places."""
    return frame[list(columns)].rename(columns=columns).to_markdown(index=False, floatfmt=f".{digits}f", intfmt=",")


def shard_share(label: str) -> tuple[str, float]:
    """('predict', 1/N) for a shard's label 'predict i/N'; (label, 1.0) for a whole step."""
    step, _, shard = label.partition(" ")
    return step, (1 / int(shard.split("/")[1]) if shard else 1.0)


def full_shape_rows(full: pd.DataFrame, fits: pd.DataFrame) -> pd.DataFrame:
    """Steps run for real at full shape beside their extrapolation (a shard's: its share of the step's time)."""
    predicted = fits.set_index("step")
    shares = [shard_share(s) for s in full["step"]]
    return pd.DataFrame(
        {
            "step": full["step"],
            "predicted_cpu_h": [predicted.loc[s, "full_cpu_hours"] * share for s, share in shares],
            "cpu_h": full["cpu_s"] / 3600,
            "wall_h": full["seconds"] / 3600,
            "predicted_peak_gb": [predicted.loc[s, "full_peak_gb"] for s, _ in shares],
            "peak_gb": full["peak_gb"],
        }
    )


def report(steps: pd.DataFrame, fits: pd.DataFrame, note: str, full: pd.DataFrame | None = None) -> str:
    wide = steps.pivot_table(index="step", columns="train", values="seconds", sort=False).reset_index()
    wide.columns = [str(c) for c in wide.columns]
    cpu = steps.pivot_table(index="step", columns="train", values="cpu_s", sort=False).reset_index()
    cpu.columns = [str(c) for c in cpu.columns]
    rss = steps.pivot_table(index="step", columns="train", values="peak_gb", sort=False).reset_index()
    rss.columns = [str(c) for c in rss.columns]
    sizes = ", ".join(f"{t:,} / {s:,}" for t, s in steps[["train", "test"]].drop_duplicates().to_numpy())
    return (
        f"{SECTION}\n\nDate {datetime.date.today()}, {os.cpu_count()} cores ({platform.processor() or 'x86_64'}), "
        f"24 GiB, no GPU. Command: `python benchmarks/scaling.py --train ...`. Sizes (training / test): {sizes}.\n"
        "Tiny offline encoder, params.yaml defaults (reference member included), each step alone under GNU time.\n\n"
        "Wall seconds per step (columns: training proteins):\n\n"
        + table(wide, {c: c for c in wide.columns})
        + "\n\nCPU seconds (user + system, the step's processes and DIAMOND) per step:\n\n"
        + table(cpu, {c: c for c in cpu.columns})
        + "\n\nPeak RSS (GB) per step:\n\n"
        + table(rss, {c: c for c in rss.columns})
        + "\n\nFitted exponents (time and RSS ~ proteins^b) and the extrapolation to 82,404 / 224,309 on this machine:\n\n"
        + table(
            fits,
            {
                "step": "step",
                "time_exponent": "CPU time b (all sizes)",
                "time_exponent_last": "CPU time b (last doubling)",
                "rss_exponent": "RSS b (all sizes)",
                "rss_exponent_last": "RSS b (last doubling)",
                "parallel_share": "parallel share of CPU work",
                "full_cpu_hours": "full shape, CPU hours",
                "full_hours_2core": "full shape, hours (2 cores)",
                "full_hours_32core": "full shape, hours (32 cores)",
                "full_peak_gb": "full shape, peak GB",
            },
        )
        + "\n\nEmbedding the full shape with real ESM-2 weights instead of the tiny encoder (104.7M residues: the drawn "
        "82,404 + 224,309 proteins after balanced truncation to 1,022, mean 341; the bundled sample's mean, 482, would "
        "be 1.41x more). CPU: our forward's fp32 residues per CPU-second x cores (linear in cores: the forward is "
        "matmul-bound); GPU: 2 x parameters FLOPs per residue at 25% of an H100's dense bf16 peak, an assumption, not "
        "a measurement (no GPU was lent), and a lower bound for the small models, which other costs bound first:\n\n"
        + table(
            embed_projection(EMBED_RESIDUES),
            {
                "model": "ESM-2",
                "rate": "CPU rate",
                "hours_2core": "hours, 2 cores",
                f"hours_{CORES_BIG}core": f"hours, {CORES_BIG} cores",
                "hours_gpu": "hours, 1 GPU (FLOP bound)",
            },
        )
        + (
            "\n\nSteps run for real at full shape (82,404 / 224,309; `python benchmarks/scaling.py --train 82404 --out "
            "$PWD/outputs/bench/full_shape_chain --only ... --threads 1`), against their extrapolation; a row `predict i/N` "
            "is one shard of N (`--predict-shard i/N`), set against 1/N of the step's extrapolation:\n\n"
            + table(
                full_shape_rows(full, fits),
                {
                    "step": "step",
                    "predicted_cpu_h": "predicted CPU h",
                    "cpu_h": "measured CPU h",
                    "wall_h": "measured wall h",
                    "predicted_peak_gb": "predicted peak GB",
                    "peak_gb": "measured peak GB",
                },
            )
            if full is not None
            else ""
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
    ap.add_argument("--remeasure", nargs="+", default=[], help="steps to run again at every measured size")
    ap.add_argument("--only", nargs="+", default=None, help="run only these steps (e.g. at full shape)")
    ap.add_argument(
        "--predict-shard", default=None, help="i/N: predict only scores shard i of N (cafa predict --shard)"
    )
    ap.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS for the steps (0 = torch's default)")
    args = ap.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    csv = args.out / "steps.csv"
    steps = pd.read_csv(csv) if csv.is_file() else pd.DataFrame()
    if args.remeasure:
        sizes = sorted(set(args.train) & set(steps["train"]))
        steps = remeasure(steps, args.remeasure, args.out, args.threads, sizes)
        steps.to_csv(csv, index=False)
    elif not args.report_only:
        pool = load_pool()
        for n in args.train:
            if len(steps) and n in set(steps["train"]) and not args.only:
                continue
            found = measure(
                n, args.out, args.esm.resolve(), args.reference_out.resolve(), pool, args.only, args.predict_shard
            )
            steps = pd.concat([steps[steps["train"] != n] if len(steps) else steps, found])
            steps.to_csv(csv, index=False)
    if args.only:  # a partial chain (e.g. at full shape) is a measurement of its own, not a point of the fit
        return
    fits = fit(steps)
    print(fits.to_string(index=False))
    plot(steps, ROOT / "benchmarks" / "scaling.png")
    full = ROOT / "outputs" / "bench" / "full_shape_chain" / str(KAGGLE_TRAIN) / "steps_partial.csv"
    write_section(report(steps, fits, args.note, pd.read_csv(full) if full.is_file() else None))


if __name__ == "__main__":
    main()
