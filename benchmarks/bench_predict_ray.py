"""Predict across shards and Ray: wall time of one `cafa predict` process vs `--shard i/N` processes
side by side (+ `cafa merge-shards`) vs `--engine ray` with an actor pool, on a few hundred bundled test proteins.

The model is bench_serving's (naive + knn + homology fitted on a seeded sample of the bundled training proteins
with the offline tiny encoder), loaded by path (`--model-uri`). Every variant starts from an empty embed.out,
so each embeds its proteins (single process: the cache; shards and Ray actors: the model embeds its batches).
Each variant runs as fresh `cafa` processes (imports, model load, Ray start included); every output must equal
the single-process submission byte for byte. Prints a table and refreshes its section in benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/bench_predict_ray.py      # about 3 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import pandas as pd
from bench_serving import build_model, machine_line, queries  # benchmarks/ (run as `python benchmarks/<file>.py`)
from results_md import write_section

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SECTION = "## Predict across shards and Ray"


def cafa(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=500, help="training proteins of the model")
    parser.add_argument("--proteins", type=int, default=300, help="query proteins (bundled test set)")
    parser.add_argument("--batch-size", type=int, default=50, help="predict.batch_size (Ray: proteins per block)")
    parser.add_argument("--workers", type=int, default=2, help="Ray actors and shard processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    from cafa_mlflow.io.fasta import write_fasta

    with tempfile.TemporaryDirectory(prefix="bench-predict-ray-") as name:
        tmp = Path(name)
        t0 = time.perf_counter()
        model = build_model(tmp, args.train, args.seed)
        print(f"model fitted and logged in {time.perf_counter() - t0:.1f} s")
        fasta = tmp / "queries.fasta"
        write_fasta(fasta, [tuple(q) for q in queries(args.proteins, args.seed)])

        def common(tag: str) -> list[str]:
            return [
                "--fasta", str(fasta), "--model-uri", model, "--tracking-uri", f"sqlite:///{tmp}/runs.db",
                "--tracking-system-metrics", "false", "--embed-out", str(tmp / f"emb_{tag}"),
                "--batch-size", str(args.batch_size), "--threads", "1",
            ]  # fmt: skip

        rows, outputs = [], {}
        start = time.perf_counter()
        cafa("predict", *common("single"), "--out", str(tmp / "single.tsv"))
        rows.append(("one process (`cafa predict`)", time.perf_counter() - start))
        outputs["single"] = tmp / "single.tsv"

        n, out = args.workers, tmp / "sharded.tsv"
        start = time.perf_counter()
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "pipelines.cli", "predict", *common(f"shard{i}"), "--out", str(out)]
                + ["--shard", f"{i}/{n}"],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
            )
            for i in range(n)
        ]
        if any(p.wait() for p in procs):
            raise SystemExit("a shard failed")
        cafa("merge-shards", "--out", str(out))
        rows.append((f"{n} shard processes side by side + `cafa merge-shards`", time.perf_counter() - start))
        outputs["sharded"] = out

        start = time.perf_counter()
        cafa("predict", *common("ray"), "--out", str(tmp / "ray.tsv"), "--engine", "ray", "--workers", str(n))
        rows.append((f"`--engine ray --workers {n}` (local Ray started by the command)", time.perf_counter() - start))
        outputs["ray"] = tmp / "ray.tsv"

        single = outputs["single"].read_bytes()
        same = {k: v.read_bytes() == single for k, v in outputs.items()}
        lines = len(single.splitlines())
    if not all(same.values()):
        raise SystemExit(f"outputs differ from the single-process submission: {same}")
    base = rows[0][1]
    table = pd.DataFrame(
        {
            "variant": [what for what, _ in rows],
            "wall s": [round(sec, 1) for _, sec in rows],
            "vs one process": [f"{sec / base:.2f}x" for _, sec in rows],
            "output == one process": "yes",
        }
    ).to_markdown(index=False)
    print(table)
    if args.no_write:
        return
    write_section(
        f"{SECTION}\n\n"
        f"{date.today().isoformat()}, {machine_line()}; `python benchmarks/bench_predict_ray.py --train {args.train} "
        f"--proteins {args.proteins} --batch-size {args.batch_size} --workers {args.workers}`, ray 2.60.0. "
        f"{args.proteins} bundled test proteins, {lines:,} submission lines; model: naive + knn + homology fitted on "
        f"{args.train} training proteins with the tiny encoder (bench_serving's). Each variant: fresh `cafa` "
        "processes from an empty embed.out (imports, model loading, embedding, DIAMOND, Ray start included), wall "
        "time; every output is byte-identical to the single-process submission.\n\n"
        f"{table}\n"
    )


if __name__ == "__main__":
    main()
