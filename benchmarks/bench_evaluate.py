"""`cafa evaluate` vs the reference cafaeval 1.3.0 on the same files: wall time, CPU, peak memory, same answers.

Input (benchmarks/scale_inputs.py): full GO, the bundled test truth spread over N proteins, IA from the
bundled training annotations, and a submission with K terms per protein drawn from every term the
training annotations reach (CAFA3-sized by default: 3,300 proteins x 300 terms, about 1M lines).
Each tool runs end to end in its own process, imports included (GNU time: wall, user+system CPU, peak
RSS): cafaeval as `cafa_eval(obo, pred_dir, truth, ia, prop='max', norm='cafa', th_step=0.01, n_cpu=1)`,
ours as the `cafa evaluate` entry point (`python -m pipelines.evaluate --pred ...`), with the ontology
cache warm and cold. Prints a table and refreshes `## Evaluator vs cafaeval` in benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/bench_evaluate.py                      # 3,300 x 300: ~3 min on 2 cores
    .venv/bin/python benchmarks/bench_evaluate.py --proteins 1000 --terms 100 --no-results
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import tempfile
from pathlib import Path

from results_md import write_section  # benchmarks/ modules (run as `python benchmarks/<file>.py`)
from scale_inputs import make_inputs
from timed import evaluate_args, run_timed

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
SECTION = "## Evaluator vs cafaeval"
NAMESPACE = {"biological_process": "BPO", "cellular_component": "CCO", "molecular_function": "MFO"}


def cafaeval_worker(folder: Path) -> None:
    from cafaeval.evaluation import cafa_eval

    _, best = cafa_eval(
        str(folder / "go.obo"),
        str(folder / "pred"),
        str(folder / "truth.tsv"),
        ia=str(folder / "ia.tsv"),
        prop="max",
        norm="cafa",
        th_step=0.01,
        n_cpu=1,
    )
    f_w = best["f_w"].reset_index().set_index("ns")["f_w"]
    print("RESULT " + json.dumps({NAMESPACE[ns]: float(v) for ns, v in f_w.items()}))


def run_ours(folder: Path, cache: Path) -> dict:
    out = run_timed(
        evaluate_args(folder, folder / "pred" / "submission.tsv", folder / "ours.json"), {"CAFA_CACHE_DIR": str(cache)}
    )
    result = json.loads((folder / "ours.json").read_text())
    return {**out, "f_w": {a: result[a]["f_w"] for a in ("BPO", "CCO", "MFO")}}


def run_cafaeval(folder: Path) -> dict:
    out = run_timed([__file__, "--worker", str(folder)])
    line = [x for x in out["stdout"].splitlines() if x.startswith("RESULT ")][-1]
    return {**out, "f_w": json.loads(line[len("RESULT ") :])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--proteins", type=int, default=3300)
    parser.add_argument("--terms", type=int, default=300, help="predicted terms per protein")
    parser.add_argument("--no-cafaeval", action="store_true", help="time ours only")
    parser.add_argument("--no-results", action="store_true", help="do not touch benchmarks/RESULTS.md")
    parser.add_argument(
        "--notes", default="", help="free text appended to the section (e.g. other load on the machine)"
    )
    parser.add_argument("--worker", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return cafaeval_worker(Path(args.worker))
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        size = make_inputs(folder, args.proteins, k=args.terms)  # also fills the ontology cache below
        print(f"inputs: {size}", flush=True)
        cold = run_ours(folder, folder / "cold-cache")  # first run: parses the OBO and writes the cache
        ours = run_ours(folder, folder / "cold-cache")  # every later run
        print(f"ours (cold cache): {cold}\nours: {ours}", flush=True)
        ref = None if args.no_cafaeval else run_cafaeval(folder)
        print(f"cafaeval: {ref}", flush=True)
    load.append(os.getloadavg()[0])
    diff = max(abs(ours["f_w"][a] - ref["f_w"][a]) for a in ref["f_w"]) if ref else float("nan")
    rows = [
        ("`cafa evaluate` (ontology cache warm)", ours),
        ("`cafa evaluate`, first run (parses the OBO, writes the cache)", cold),
        *([("cafaeval 1.3.0 (n_cpu=1)", ref)] if ref else []),
    ]
    lines = [
        SECTION,
        "",
        f"Machine: {os.cpu_count()}-core CPU shared with other jobs (1-minute load average {load[0]:.1f} at the start, "
        f"{load[1]:.1f} at the end), date {datetime.date.today()}. Input (benchmarks/scale_inputs.py): "
        f"{size['proteins']:,} proteins ({size['truth_proteins']:,} with truth: the bundled test set) x {args.terms} "
        f"terms drawn from all terms the training annotations reach = {size['lines']:,} submission lines, full GO "
        "(go-basic, 43,789 live terms), IA from the bundled training annotations, th_step 0.01. Each tool end to end "
        "in its own process, imports included, one thread of numeric work; GNU time for wall, CPU (user + system) "
        "and peak RSS.",
        f"Command: `.venv/bin/python benchmarks/bench_evaluate.py --proteins {args.proteins} --terms {args.terms}`",
        "",
        "| evaluator | wall s | CPU s | peak RSS MB | weighted F-max BPO / CCO / MFO |",
        "|---|---|---|---|---|",
    ]
    for name, r in rows:
        fw = " / ".join(f"{r['f_w'][a]:.4f}" for a in ("BPO", "CCO", "MFO") if a in r["f_w"])
        lines.append(f"| {name} | {r['seconds']:.2f} | {r['cpu_s']:.2f} | {r['peak_mb']:.0f} | {fw} |")
    if ref:
        lines += [
            "",
            f"Speed-up end to end: **{ref['seconds'] / ours['seconds']:.0f}x wall, {ref['cpu_s'] / ours['cpu_s']:.0f}x "
            f"CPU** (first run, cache cold: {ref['seconds'] / cold['seconds']:.0f}x wall, "
            f"{ref['cpu_s'] / cold['cpu_s']:.0f}x CPU). Largest |difference| of the weighted F-max values: {diff:.1e}.",
        ]
    if args.notes:
        lines += ["", f"Notes: {args.notes}"]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if not args.no_results:
        write_section(text)


if __name__ == "__main__":
    main()
