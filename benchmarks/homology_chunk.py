"""One homology search chunk at Kaggle's full shape: the first N test proteins against the 82,404 training
proteins, through `cafa_mlflow.data.diamond.search` (every hit at e <= 1e-3, as the homology member searches),
per sensitivity. Each search runs in its own process under GNU time (CPU, wall, peak RSS of DIAMOND or Python).

Needs the full-shape chain's prepared data (`benchmarks/scaling.py --train 82404 --out
$PWD/outputs/bench/full_shape_chain --only prepare`). Prints a table and refreshes its section of RESULTS.md.

    .venv/bin/python benchmarks/homology_chunk.py --runs ultra-sensitive:2000 sensitive:2000 ultra-sensitive:20000
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

import pandas as pd
from results_md import write_section  # benchmarks/ modules (run as `python benchmarks/<file>.py`)
from timed import run_timed

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PREPARED = ROOT / "outputs" / "bench" / "full_shape_chain" / "82404" / "outputs" / "prepared"
SECTION = "## Homology search chunk at full shape"
EVALUE = 1e-3  # params.yaml homology.evalue
THREADS = 2  # this machine's cores


def worker(sensitivity: str, n: int, cache: Path) -> None:
    from cafa_mlflow.data.diamond import build_db, search
    from cafa_mlflow.io.fasta import read_fasta

    train = [r.id for r in read_fasta(PREPARED / "train.fasta")]
    queries = [r.id for _, r in zip(range(n), read_fasta(PREPARED / "test.fasta"))]
    db = build_db(PREPARED / "train.fasta", cache, train, THREADS)
    hits = search(db, PREPARED / "test.fasta", queries, sensitivity, EVALUE, 0, THREADS)
    print(f"RESULT {len(hits)} {hits['qseqid'].nunique()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", nargs="+", default=["ultra-sensitive:2000", "sensitive:2000", "ultra-sensitive:20000"])
    ap.add_argument("--cache", type=Path, default=ROOT / "outputs" / "bench" / "homology_chunk")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker[0], int(args.worker[1]), args.cache)
    worker_db = run_timed(
        [__file__, "--worker", "default", "1", "--cache", str(args.cache)]
    )  # builds the database once
    rows = []
    for run in args.runs:
        sensitivity, n = run.split(":")
        out = run_timed([__file__, "--worker", sensitivity, n, "--cache", str(args.cache)])
        hits, with_hit = out["stdout"].split("RESULT ")[-1].split()
        rows.append(
            {
                "sensitivity": sensitivity,
                "queries": int(n),
                "CPU s": round(out["cpu_s"], 1),
                "CPU ms per query": round(1000 * out["cpu_s"] / int(n), 1),
                "wall s": round(out["seconds"], 1),
                "peak GB": round(out["peak_mb"] / 1024, 2),
                "hits": int(hits),
                "queries with a hit": int(with_hit),
            }
        )
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    write_section(
        f"{SECTION}\n\nDate {datetime.date.today()}, {os.cpu_count()} cores, DIAMOND {THREADS} threads, load average "
        f"{os.getloadavg()[0]:.1f} at the end. Command: `python benchmarks/homology_chunk.py --runs "
        f"{' '.join(args.runs)}`. The first N proteins of the full-shape test FASTA (224,309) against its 82,404 "
        "training proteins, every hit at e <= 1e-3, through `data.diamond.search` (one DIAMOND call per "
        f"`QUERY_CHUNK` = 20,000 queries); each run in its own process (database built beforehand, "
        f"{worker_db['seconds']:.0f} s with a 1-query search).\n\n" + table.to_markdown(index=False) + "\n"
    )


if __name__ == "__main__":
    main()
