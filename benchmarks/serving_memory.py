"""Memory of `mlflow models serve` per request size, and whether it returns near its base afterwards.

The model of bench_serving (naive + knn + homology on the tiny encoder, `--train` bundled training proteins) is
served with `--env-manager local` on 127.0.0.1. For each request size (bundled test proteins, sequence-only),
the server's resident memory (its process and children, DIAMOND included, sampled every 0.1 s) is read before the
request, at its peak during it, and 2 s after the answer. These numbers choose `serving.max_proteins` and
`serving.max_residues` (docs/serving.md).

    .venv/bin/python benchmarks/serving_memory.py --sizes 10 100 1000
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

from bench_serving import build_model, machine_line  # benchmarks/ (run as `python benchmarks/<file>.py`)
from results_md import write_section

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MB = 2**20


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its children."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def peak_during(pid: int, action) -> tuple[object, int]:
    """(action's result, the highest tree_rss while it ran)."""
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss(pid))
            time.sleep(0.1)

    watcher = threading.Thread(target=sample)
    watcher.start()
    try:
        result = action()
    finally:
        done.set()
        watcher.join()
    return result, peak[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=500)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from cafa_mlflow.io.fasta import read_fasta
    from cafa_mlflow.serving.server import serve

    records = list(read_fasta(ROOT / "data/sample/test/test_sequences.fasta.xz"))
    with tempfile.TemporaryDirectory(prefix="serving-memory-") as tmp:
        model = build_model(Path(tmp), args.train, args.seed)
        with serve(model, timeout=600) as server:
            pid = server.proc.pid
            server.post({"dataframe_records": [{"protein": records[0].id, "sequence": records[0].sequence}]})
            lines = [
                "| proteins | residues | rows answered | RSS before (MiB) | peak (MiB) | 2 s after (MiB) | seconds |"
            ]
            lines.append("|---|---|---|---|---|---|---|")
            print(*lines, sep="\n")
            for size in args.sizes:
                picked = random.Random(size).sample(records, min(size, len(records)))
                body = {"dataframe_records": [{"protein": r.id, "sequence": r.sequence} for r in picked]}
                before, start = tree_rss(pid), time.perf_counter()
                (status, answer), peak = peak_during(pid, lambda body=body: server.post(body, timeout=3600))
                took = time.perf_counter() - start
                time.sleep(2)
                after = tree_rss(pid)
                rows = len(answer.get("predictions", [])) if status == 200 else f"HTTP {status}"
                residues = sum(len(r.sequence) for r in picked)
                lines.append(
                    f"| {len(picked)} | {residues} | {rows} | {before / MB:.0f} | {peak / MB:.0f} | {after / MB:.0f} "
                    f"| {took:.1f} |"
                )
                print(lines[-1], flush=True)
    sizes = " ".join(map(str, args.sizes))
    write_section(
        "## Serving memory per request size\n\n"
        f"{date.today().isoformat()}, {machine_line()}; `python benchmarks/serving_memory.py --train {args.train} "
        f"--sizes {sizes}`. `mlflow models serve --env-manager local` of bench_serving's model on 127.0.0.1; "
        "resident memory of the server and its children (DIAMOND included) before each sequence-only request, at "
        "its peak, and 2 s after the answer. These numbers set `serving.max_proteins` and `serving.max_residues` "
        "(docs/serving.md).\n\n" + "\n".join(lines) + "\n"
    )


if __name__ == "__main__":
    main()
