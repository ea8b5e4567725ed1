"""Evaluator vs the reference cafaeval 1.3.0 on the same files: time, peak memory, same answers.

Input: the bundled GO, the bundled test truth for N proteins, IA from the bundled training annotations,
and a submission with K terms per protein (a noisy term-frequency predictor over the 3K most frequent
training terms, 3 decimals). Each tool runs end to end from the files in its own process (peak RSS =
ru_maxrss of that process): cafaeval's `cafa_eval(obo, pred_dir, truth, ia, prop='max', norm='cafa',
th_step=0.01)`, and ours = load_obo + read truth + read_submission + Scorer (the `cafa evaluate` path).
Prints a table and refreshes `## Evaluator vs cafaeval` in benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/bench_evaluate.py                      # N=4215 (all), K=1500: ~5 min on 2 cores
    .venv/bin/python benchmarks/bench_evaluate.py --proteins 1000 --terms 500 --no-results
    .venv/bin/python benchmarks/bench_evaluate.py --notes "other helpers' jobs ran at the same time"
"""

from __future__ import annotations

import argparse
import datetime
import json
import lzma
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_md import write_section  # benchmarks/results_md.py (run as `python benchmarks/<file>.py`)

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
SECTION = "## Evaluator vs cafaeval"
NAMESPACE = {"biological_process": "BPO", "cellular_component": "CCO", "molecular_function": "MFO"}


def make_inputs(folder: Path, n_proteins: int, n_terms: int, seed: int = 0) -> dict:
    import numpy as np
    import pandas as pd

    sys.path.insert(0, str(ROOT))
    from cafa_mlflow.go.annotations import resolve_terms
    from cafa_mlflow.go.ia import compute_ia
    from cafa_mlflow.go.ontology import load_obo
    from cafa_mlflow.io.ia import write_ia
    from cafa_mlflow.io.terms import read_terms
    from cafa_mlflow.labels import label_matrix

    rng = np.random.default_rng(seed)
    (folder / "go.obo").write_bytes(lzma.open(SAMPLE / "go-basic.obo.xz").read())  # cafaeval reads plain text
    ontology = load_obo(folder / "go.obo")
    train = resolve_terms(read_terms(SAMPLE / "train" / "train_terms.tsv.xz"), ontology)
    labels = label_matrix(train, ontology, list(pd.unique(train["protein"])))
    write_ia(folder / "ia.tsv", compute_ia(labels, ontology))
    freq = np.asarray(labels.matrix.sum(axis=0)).ravel() / labels.shape[0]
    truth = read_terms(SAMPLE / "test" / "test_terms.tsv.xz")
    proteins = list(pd.unique(truth["protein"]))
    chosen = [proteins[i] for i in sorted(rng.choice(len(proteins), min(n_proteins, len(proteins)), replace=False))]
    truth = truth[truth["protein"].isin(set(chosen))]
    truth.rename(columns={"protein": "EntryID"}).to_csv(folder / "truth.tsv", sep="\t", index=False)
    pool = np.argsort(-freq)[: 3 * n_terms]
    cols = np.concatenate([rng.choice(pool, n_terms, replace=False) for _ in chosen])
    scores = np.clip(freq[cols] * rng.uniform(0.3, 1.6, len(cols)) + rng.uniform(0, 0.1, len(cols)), 0.001, 1)
    (folder / "pred").mkdir()
    pd.DataFrame(
        {"p": np.repeat(chosen, n_terms), "t": np.asarray(ontology.terms, dtype=object)[cols], "s": np.round(scores, 3)}
    ).to_csv(folder / "pred" / "submission.tsv", sep="\t", header=False, index=False, float_format="%.3g")
    return {"proteins": len(chosen), "lines": len(cols)}


def run_cafaeval(folder: Path) -> dict:
    from cafaeval.evaluation import cafa_eval

    t0 = time.perf_counter()
    _, best = cafa_eval(
        str(folder / "go.obo"),
        str(folder / "pred"),
        str(folder / "truth.tsv"),
        ia=str(folder / "ia.tsv"),
        prop="max",
        norm="cafa",
        th_step=0.01,
    )
    seconds = time.perf_counter() - t0
    f_w = best["f_w"].reset_index().set_index("ns")["f_w"]
    return {"seconds": seconds, "f_w": {NAMESPACE[ns]: float(v) for ns, v in f_w.items()}}


def run_ours(folder: Path) -> dict:
    sys.path.insert(0, str(ROOT))
    from cafa_mlflow.evaluation.scorer import Scorer, read_truth
    from cafa_mlflow.go.ontology import load_obo
    from cafa_mlflow.io.ia import read_ia
    from cafa_mlflow.labels import read_submission

    t0 = time.perf_counter()
    ontology = load_obo(folder / "go.obo")
    scorer = Scorer(ontology, read_truth(folder / "truth.tsv", ontology), read_ia(folder / "ia.tsv"))
    t1 = time.perf_counter()
    pred = read_submission(folder / "pred" / "submission.tsv")
    t2 = time.perf_counter()
    result = scorer(pred)
    t3 = time.perf_counter()
    return {
        "seconds": t3 - t0,
        "setup": t1 - t0,
        "read": t2 - t1,
        "score": t3 - t2,
        "f_w": {a: result[a]["f_w"] for a in ("BPO", "CCO", "MFO")},
    }


def worker(tool: str, folder: Path) -> None:
    out = (run_cafaeval if tool == "cafaeval" else run_ours)(folder)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["peak_mb"] = usage.ru_maxrss / 1024
    out["cpu_s"] = usage.ru_utime + usage.ru_stime  # whole process (imports included): robust to a busy machine
    print("RESULT " + json.dumps(out))


def measure(tool: str, folder: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", tool, str(folder)], capture_output=True, text=True, env=env
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{tool} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--proteins", type=int, default=4215)
    parser.add_argument("--terms", type=int, default=1500, help="predicted terms per protein")
    parser.add_argument("--no-cafaeval", action="store_true", help="time ours only")
    parser.add_argument("--no-results", action="store_true", help="do not touch benchmarks/RESULTS.md")
    parser.add_argument(
        "--notes", default="", help="free text appended to the section (e.g. other load on the machine)"
    )
    parser.add_argument("--worker", nargs=2, metavar=("TOOL", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker[0], Path(args.worker[1]))
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        size = make_inputs(folder, args.proteins, args.terms)
        print(
            f"inputs: {size['proteins']} proteins x {args.terms} terms = {size['lines']:,} lines "
            f"({time.perf_counter() - t0:.0f} s to build)",
            flush=True,
        )
        ours = measure("ours", folder)
        print(f"ours: {ours}", flush=True)
        ref = None if args.no_cafaeval else measure("cafaeval", folder)
        print(f"cafaeval: {ref}", flush=True)
    load.append(os.getloadavg()[0])
    diff = max(abs(ours["f_w"][a] - ref["f_w"][a]) for a in ref["f_w"]) if ref else float("nan")
    rows = [("cafa_mlflow.evaluation.scorer (`cafa evaluate` path)", ours), *([("cafaeval 1.3.0", ref)] if ref else [])]
    lines = [
        SECTION,
        "",
        f"Machine: {os.cpu_count()}-core CPU (shared with other jobs running at the same time, so times are "
        f"noisy; 1-minute load average {load[0]:.1f} at the start, {load[1]:.1f} at the end), "
        f"date {datetime.date.today()}. Input: {size['proteins']} bundled test proteins x {args.terms} predicted terms "
        f"({size['lines']:,} submission lines), full GO (go-basic 2025-06-01), IA from the bundled training "
        f"annotations, th_step 0.01. Each tool runs end to end from the files in its own process.",
        f"Command: `.venv/bin/python benchmarks/bench_evaluate.py --proteins {args.proteins} --terms {args.terms}`",
        "",
        "| evaluator | wall s | CPU s (process) | of which: setup / read submission / score s (wall) | peak RSS MB "
        "| weighted F-max BPO / CCO / MFO |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rows:
        split = f"{r['setup']:.1f} / {r['read']:.1f} / {r['score']:.1f}" if "score" in r else "-"
        fw = " / ".join(f"{r['f_w'][a]:.4f}" for a in ("BPO", "CCO", "MFO") if a in r["f_w"])
        lines.append(f"| {name} | {r['seconds']:.1f} | {r['cpu_s']:.1f} | {split} | {r['peak_mb']:.0f} | {fw} |")
    if ref:
        lines += [
            "",
            f"Speed-up end to end: {ref['seconds'] / ours['seconds']:.1f}x wall, {ref['cpu_s'] / ours['cpu_s']:.1f}x "
            f"CPU; without reading the submission (setup + scoring, ours): "
            f"{ref['seconds'] / (ours['setup'] + ours['score']):.0f}x; scoring alone: "
            f"{ref['seconds'] / ours['score']:.0f}x. Reading the submission TSV is "
            f"`cafa_mlflow.io.submission.read_submission` ({ours['read']:.1f} s here). "
            f"Largest |difference| of the weighted F-max values: {diff:.1e}.",
        ]
    if args.notes:
        lines += ["", f"Notes: {args.notes}"]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if not args.no_results:
        write_section(text)


if __name__ == "__main__":
    main()
