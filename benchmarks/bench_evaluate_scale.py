"""`cafa evaluate` and `cafa validate-submission` at Kaggle scale: time and peak memory against lines.

For each size (1M, 5M, 20M, 53M lines by default; 53M = CAFA-6's 224,309 proteins x ~236 terms, a mix of
50-1,500 per protein, see scale_inputs.py) it writes a submission and the truth (the bundled 4,215 test
proteins spread over the file), runs both commands end to end in their own process (GNU time: wall, peak
RSS; ontology cache warm), deletes the files, and then measures multi-file mode: N CAFA3-sized
submissions in one `cafa evaluate --pred FOLDER`, reporting the cost per file after the first.
Writes `## Evaluator at Kaggle scale` in RESULTS.md and benchmarks/evaluate_scale.png.

    .venv/bin/python benchmarks/bench_evaluate_scale.py                       # ~15 min on 2 cores, 2 GB disk
    .venv/bin/python benchmarks/bench_evaluate_scale.py --lines 1000000 --no-results
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import tempfile
from pathlib import Path

from results_md import write_section  # benchmarks/ modules (run as `python benchmarks/<file>.py`)
from scale_inputs import make_inputs
from timed import evaluate_args, run_timed

HERE = Path(__file__).resolve().parent
SECTION = "## Evaluator at Kaggle scale"
KAGGLE_PROTEINS, KAGGLE_LINES = 224_309, 53_000_000


def one_size(work: Path, lines: int) -> dict:
    folder = work / f"n{lines}"
    n_proteins = max(1, round(KAGGLE_PROTEINS * lines / KAGGLE_LINES))
    size = make_inputs(folder, n_proteins, ia=True)
    sub = folder / "pred" / "submission.tsv"
    size["mb"] = sub.stat().st_size / 2**20
    ev = run_timed(evaluate_args(folder, sub, folder / "out.json"))
    val = run_timed(["-m", "pipelines.cli", "validate-submission", str(sub)])
    shutil.rmtree(folder)
    row = {
        **size,
        **{f"eval_{k}": ev[k] for k in ("seconds", "cpu_s", "peak_mb")},
        **{f"val_{k}": val[k] for k in ("seconds", "cpu_s", "peak_mb")},
    }
    print(row, flush=True)
    return row


def multi_file(work: Path, n_files: int) -> dict:
    """n CAFA3-sized submissions (3,300 proteins x ~300 terms, different seeds) in one `--pred FOLDER`."""
    folder = work / "multi"
    base = make_inputs(folder, 3300, k=300, seed=0)
    preds = folder / "many"
    preds.mkdir()
    (folder / "pred" / "submission.tsv").rename(preds / "sub00.tsv")
    for i in range(1, n_files):
        other = make_inputs(work / f"m{i}", 3300, k=300, seed=i, ia=False)
        (work / f"m{i}" / "pred" / "submission.tsv").rename(preds / f"sub{i:02d}.tsv")
        shutil.rmtree(work / f"m{i}")
        assert other["lines"] > 0
    single = run_timed(evaluate_args(folder, preds / "sub00.tsv", folder / "one.json"))
    many = run_timed(evaluate_args(folder, preds, folder / "many.json"))
    per_file = float(re.search(r"([0-9.]+) s per file after the first", many["stdout"]).group(1))
    shutil.rmtree(folder)
    return {
        "files": n_files,
        "lines": base["lines"],
        "single_s": single["seconds"],
        "many_s": many["seconds"],
        "per_file_s": per_file,
    }


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [r["lines"] / 1e6 for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(lines, [r["eval_seconds"] for r in rows], "o-", label="cafa evaluate")
    left.plot(lines, [r["val_seconds"] for r in rows], "s-", label="cafa validate-submission")
    left.set(xlabel="submission lines (millions)", ylabel="wall seconds", title="time")
    right.plot(lines, [r["eval_peak_mb"] / 1024 for r in rows], "o-", label="cafa evaluate")
    right.plot(lines, [r["val_peak_mb"] / 1024 for r in rows], "s-", label="cafa validate-submission")
    right.set(xlabel="submission lines (millions)", ylabel="peak RSS (GB)", title="memory")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, nargs="+", default=[1_000_000, 5_000_000, 20_000_000, KAGGLE_LINES])
    parser.add_argument("--files", type=int, default=5, help="submissions in the multi-file run (0 = skip)")
    parser.add_argument("--workdir", default=None, help="where to write the inputs (deleted after each size)")
    parser.add_argument("--no-results", action="store_true")
    parser.add_argument("--notes", default="")
    args = parser.parse_args()
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        rows = [one_size(Path(tmp), n) for n in args.lines]
        multi = multi_file(Path(tmp), args.files) if args.files > 1 else None
    load.append(os.getloadavg()[0])
    png = HERE / "evaluate_scale.png"
    plot(rows, png)
    text = [
        SECTION,
        "",
        f"Machine: {os.cpu_count()}-core CPU shared with other jobs (1-minute load average {load[0]:.1f} at the start, "
        f"{load[1]:.1f} at the end), date {datetime.date.today()}. Inputs from benchmarks/scale_inputs.py: truth = the "
        "bundled 4,215 test proteins, full GO, IA from the bundled training annotations; each command end to end in its "
        "own process (imports included, ontology cache warm), wall time, CPU time (user + system) and peak RSS from "
        "GNU time; with the cores shared, CPU seconds are the steadier measure of the work.",
        f"Command: `.venv/bin/python benchmarks/bench_evaluate_scale.py` (plot: benchmarks/{png.name})",
        "",
        "| lines | proteins | file MB | `cafa evaluate` wall s (CPU s) | evaluate peak GB "
        "| `cafa validate-submission` wall s (CPU s) | validate peak GB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        text.append(
            f"| {r['lines']:,} | {r['proteins']:,} | {r['mb']:.0f} | {r['eval_seconds']:.1f} ({r['eval_cpu_s']:.1f}) "
            f"| {r['eval_peak_mb'] / 1024:.2f} | {r['val_seconds']:.1f} ({r['val_cpu_s']:.1f}) | {r['val_peak_mb'] / 1024:.2f} |"
        )
    if multi:
        text += [
            "",
            f"Multi-file mode: {multi['files']} CAFA3-sized submissions ({multi['lines']:,} lines each) in one "
            f"`cafa evaluate --pred FOLDER`: {multi['many_s']:.1f} s in all, {multi['per_file_s']:.2f} s per file after "
            f"the first (one file alone: {multi['single_s']:.1f} s end to end).",
        ]
    if args.notes:
        text += ["", f"Notes: {args.notes}"]
    out = "\n".join(text) + "\n"
    print("\n" + out)
    if not args.no_results:
        write_section(out)


if __name__ == "__main__":
    main()
