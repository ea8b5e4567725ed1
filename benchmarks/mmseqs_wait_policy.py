"""MMseqs2 with OpenMP's default wait policy (waiting threads spin) and with OMP_WAIT_POLICY=PASSIVE (they sleep):
the two searches of a served request (homology against the training pool, reference against Swiss-Prot 2014) side
by side and alone, CPU seconds of each search from its own resource usage, and whether the hits are the same.

    python benchmarks/mmseqs_wait_policy.py --pool-index ~/.cache/cafa-mlflow/mmseqs/mmseqs-<pool>/targets \
        --reference-index ~/.cache/cafa-mlflow/mmseqs/mmseqs-<reference>/targets [--size 100] [--rounds 2]

The indexes are the ones the chain builds in the user cache (`CAFA_CACHE_DIR`); the search settings are
params.yaml's (homology and reference blocks), as `cafa_mlflow.data.mmseqs.search` runs them.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_md import command_line, publish, stamp  # benchmarks/results_md.py (run as `python benchmarks/<file>.py`)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT / "data/sample"
POLICIES = ("default", "PASSIVE")


def start(cmd: list[str], policy: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy != "default":
        env["OMP_WAIT_POLICY"] = policy
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def finish(proc: subprocess.Popen) -> float:
    """CPU seconds (user + sys) of `proc` and its children, from its own rusage."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{proc.args[:2]} failed with exit {proc.returncode}")
    return usage.ru_utime + usage.ru_stime


def run(commands: dict[str, list[str]], policy: str) -> tuple[dict[str, float], float]:
    """({search: CPU s}, wall s until all ended) of `commands` started together."""
    t0 = time.perf_counter()
    procs = {name: start(cmd, policy) for name, cmd in commands.items()}
    cpu = {name: finish(proc) for name, proc in procs.items()}
    return cpu, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool-index", required=True)
    parser.add_argument("--reference-index", required=True)
    parser.add_argument("--size", type=int, default=100, help="bundled test proteins per search")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    from cafa_mlflow.config.params_file import load_params
    from cafa_mlflow.config.schema import Params
    from cafa_mlflow.data.mmseqs import _search_command
    from cafa_mlflow.io.fasta import read_fasta, write_fasta

    params = Params.from_dict(load_params(ROOT / "params.yaml"))
    records = random.Random(args.seed).sample(list(read_fasta(DATA / "test/test_sequences.fasta.xz")), args.size)
    threads = os.cpu_count() or 1
    lines = ["| searches | OpenMP wait policy | round | homology CPU s | reference CPU s | CPU s, all | wall s |"]
    lines.append("|---|---|---|---|---|---|---|")
    same = True
    totals: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-omp-") as tmp:
        queries = Path(tmp) / "q.fasta"
        write_fasta(queries, [(r.id, r.sequence) for r in records])

        def command(name: str, policy: str, db: str) -> list[str]:
            block = getattr(params, name)
            work = Path(tmp) / f"{name}-{policy}"
            work.mkdir(exist_ok=True)
            return _search_command(
                block.mmseqs_executable,
                Path(db),
                queries,
                work / "hits.tsv",
                work,
                block.mmseqs_sensitivity,
                block.evalue,
                block.mmseqs_max_seqs,
                threads,
            )

        for k in range(1, args.rounds + 1):
            for policy in POLICIES:
                both = {"homology": command("homology", policy, args.pool_index)}
                both["reference"] = command("reference", policy, args.reference_index)
                for label, commands in (("side by side", both), ("homology alone", {"homology": both["homology"]})):
                    cpu, wall = run(commands, policy)
                    totals.setdefault((label, policy), []).append(sum(cpu.values()))
                    cells = [f"{cpu[m]:.2f}" if m in cpu else "" for m in ("homology", "reference")]
                    lines.append(
                        f"| {label} | {policy} | {k} | {' | '.join(cells)} | {sum(cpu.values()):.2f} | {wall:.2f} |"
                    )
            for name in ("homology", "reference"):
                hits = [sorted((Path(tmp) / f"{name}-{p}" / "hits.tsv").read_text().splitlines()) for p in POLICIES]
                same &= hits[0] == hits[1]

    def mean(label: str, policy: str) -> float:
        return statistics.mean(totals[(label, policy)])

    publish(
        "## MMseqs2 side by side: OpenMP wait policy\n\n"
        f"{stamp()}; {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at the end; command "
        f"`{command_line('mmseqs_wait_policy.py')}`. A served request runs the homology and reference searches at the "
        f"same time, each with {threads} threads; here both on {args.size} bundled test proteins with params.yaml's "
        "settings, started together (and homology alone), with OpenMP's default wait policy (a waiting thread spins "
        "for a while) and with `OMP_WAIT_POLICY=PASSIVE` (it sleeps), alternating; CPU seconds of each search from "
        f"its own resource usage. Hits the same under both policies (sorted): {'yes' if same else 'NO'}. Mean CPU s "
        f"side by side: {mean('side by side', 'default'):.2f} (default) vs {mean('side by side', 'PASSIVE'):.2f} "
        f"(PASSIVE); homology alone {mean('homology alone', 'default'):.2f} vs {mean('homology alone', 'PASSIVE'):.2f}. "
        "The product's MMseqs2 commands inherit the caller's environment.\n\n" + "\n".join(lines) + "\n",
        write=not args.no_write,
    )


if __name__ == "__main__":
    main()
