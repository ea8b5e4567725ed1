"""`cafa predict` after the chain, computing the scores (`--reuse false`) and reusing the ensemble step's saved test
scores (the default, cafa_mlflow/workflows/score_cache.py): wall, CPU seconds and peak RSS of each, and whether the
two submissions are the same bytes.

    python benchmarks/bench_predict_reuse.py --train 500 [--threads 1]

The chain is the one of benchmarks/scaling.py at one size (Kaggle-shaped data drawn from Swiss-Prot 2014, the tiny
offline encoder, params.yaml defaults, the reference member included when metastudent-data is installed), every
step but predict run once under <out>/<size>/ (a step already run is not run again); then predict twice each way.
Refreshes the "## Predict reusing the chain's scores" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from kaggle_shape import draw, load_pool, test_size, write_kaggle  # noqa: E402
from results_md import write_section  # noqa: E402
from scaling import run_step, size_params  # noqa: E402

from cafa_mlflow.workflows.chain import STEPS  # noqa: E402

SECTION = "## Predict reusing the chain's scores"
RUNS = 2  # predict runs each way


def chain(n_train: int, out: Path, esm: Path, reference_out: Path) -> tuple[Path, int]:
    """The chain's steps but predict at `n_train` under out/<n_train> (steps done before are skipped: a marker
    file per step); returns (params file, test proteins)."""
    folder = out / str(n_train)
    folder.mkdir(parents=True, exist_ok=True)
    train, test = draw(load_pool(), n_train, test_size(n_train))
    params = folder / "params.yaml"
    if not params.is_file():
        size_params(folder, write_kaggle(train, test, folder / "kaggle"), esm, reference_out)
    for label, module, extra in STEPS:
        done = folder / f".done-{label}"
        if label in ("predict", "evaluate") or done.is_file():
            continue
        print(f"[{datetime.datetime.now():%H:%M:%S}] {n_train}: {label}", flush=True)
        measured = run_step(module, extra, params, folder)
        done.write_text(f"{measured['seconds']:.1f}\n")
    return params, len(test)


def predict_runs(params: Path, folder: Path) -> list[dict]:
    """`cafa predict` RUNS times computing and RUNS times reusing, alternating; each row with its output file."""
    rows = []
    for k in range(RUNS):
        for how, flags in (("computed (--reuse false)", ("--reuse", "false")), ("reused (default)", ())):
            out = folder / f"submission_{'computed' if flags else 'reused'}_{k}.tsv"
            print(f"[{datetime.datetime.now():%H:%M:%S}] predict, {how}", flush=True)
            measured = run_step("predict", ("--out", str(out), *flags), params, folder)
            rows.append({"how": how, "out": out, **measured})
    return rows


def writer_rate(folder: Path) -> tuple[int, float]:
    """(lines, CPU seconds) of the reuse path's own work in this process: the saved scores read and written as the
    submission in batches of predict.batch_size (what a reusing predict does besides starting up)."""
    import tempfile

    import yaml

    from cafa_mlflow.config.schema import SubmissionParams
    from cafa_mlflow.go.labels import load_term_matrix
    from cafa_mlflow.io.fasta import load_fasta
    from cafa_mlflow.workflows.predict_batches import batches, score_frames
    from cafa_mlflow.workflows.score_cache import SavedScores, input_digest

    params = yaml.safe_load((folder / "params.yaml").read_text())
    sub = SubmissionParams.from_dict(params["submission"])
    start = time.process_time()
    records = load_fasta(Path(params["prepare"]["out"]) / "test.fasta")
    input_digest(records)
    saved = SavedScores(
        load_term_matrix(Path(params["outputs"]["predictions"]) / "ensemble" / "test.npz"), sub.sig, records
    )
    with tempfile.TemporaryDirectory() as tmp:
        frames = batches(records, None, set(), params["predict"]["batch_size"])
        lines = score_frames(saved, frames, Path(tmp) / "sub.tsv", sub)
    return lines, time.process_time() - start


def report(rows: list[dict], n_train: int, n_test: int, note: str, rate: tuple[int, float]) -> str:
    same = len({row["out"].read_bytes() for row in rows}) == 1
    lines = sum(1 for _ in open(rows[0]["out"], "rb"))
    table = ["| predict | wall s | CPU s | peak GB | load before / after |", "|---|---|---|---|---|"]
    for row in rows:
        table.append(
            f"| {row['how']} | {row['seconds']:.1f} | {row['cpu_s']:.1f} | {row['peak_gb']:.2f} | "
            f"{row['load_before']:.1f} / {row['load_after']:.1f} |"
        )
    return (
        f"{SECTION}\n\nDate {datetime.date.today()}, {os.cpu_count()} cores ({platform.machine()}), no GPU. Command: "
        f"`python benchmarks/bench_predict_reuse.py --train {n_train}`: the chain of benchmarks/scaling.py at "
        f"{n_train} training / {n_test} test proteins (tiny encoder, params.yaml defaults), then `cafa predict` of the "
        f"prepared test proteins with the registered champion, {RUNS} times each way. The submissions ({lines:,} "
        f"lines) are {'byte-identical' if same else 'NOT the same bytes'} across all runs.\n\n"
        + "\n".join(table)
        + f"\n\nThe reuse path's own work, in one process (reading the FASTA and the saved scores, writing the "
        f"submission; the rest of a reusing run is starting Python, MLflow and the run): {rate[0]:,} lines in "
        f"{rate[1]:.2f} CPU s, {rate[0] / max(rate[1], 1e-9):,.0f} lines per CPU second."
        + (f"\n\n{note}" if note else "")
        + "\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, default=500)
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "predict_reuse")
    ap.add_argument("--esm", type=Path, default=ROOT / "outputs" / "esm2_tiny.pt")
    ap.add_argument("--reference-out", type=Path, default=ROOT / "outputs" / "reference")
    ap.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS for every step (0: leave as is)")
    ap.add_argument("--note", default="", help="free text under the table (e.g. machine load)")
    args = ap.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if not args.esm.is_file():
        from cafa_mlflow.embed import make_tiny_esm

        make_tiny_esm(args.esm)
    params, n_test = chain(args.train, args.out.resolve(), args.esm.resolve(), args.reference_out.resolve())
    rows = predict_runs(params, args.out.resolve() / str(args.train))
    text = report(rows, args.train, n_test, args.note, writer_rate(params.parent))
    print(text)
    write_section(text)


if __name__ == "__main__":
    main()
