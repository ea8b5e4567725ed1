"""Where a served request's time goes: a saved ensemble (default: the champion of the default main job) loaded in
one process, as the served model loads it, then requests of 1 and 100 bundled test proteins timed per member
(embedding, each member's predict, the combination), wall and process CPU seconds, after one warm-up request.

    python benchmarks/member_latency.py --model /work/dd/outputs/predictions/ensemble/model \
        --encoder /work/dd/outputs/esm2_tiny.pt [--engine mmseqs2] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from results_md import write_section  # benchmarks/results_md.py (run as `python benchmarks/<file>.py`)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT / "data/sample"


def timed(fn, *args):
    """(result, wall s, CPU s of this process and its finished children)."""

    def cpu() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    wall, c = time.perf_counter(), cpu()
    out = fn(*args)
    return out, time.perf_counter() - wall, cpu() - c


def request_times(ensemble, embedder, records) -> dict[str, tuple[float, float]]:
    """{step: (wall s, CPU s)} of one request: embedding, each member, the combination."""
    from cafa_mlflow.predictors.base import ProteinSet

    ids, seqs = [r[0] for r in records], [r[1] for r in records]
    emb, wall, cpu = timed(embedder, ids, seqs)
    steps = {"embed": (wall, cpu)}
    proteins = ProteinSet(ids, embeddings=emb, sequences=seqs)
    scores = {}
    for name, member in ensemble.members.items():
        scores[name], wall, cpu = timed(member.predict, proteins)
        steps[name] = (wall, cpu)
    _, wall, cpu = timed(ensemble.combine, scores, ids)
    steps["combine"] = (wall, cpu)
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="/work/dd/outputs/predictions/ensemble/model")
    parser.add_argument("--encoder", default="/work/dd/outputs/esm2_tiny.pt")
    parser.add_argument("--engine", default=None, help="search engine of homology and reference (default: saved)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5, help="requests per size after one warm-up")
    parser.add_argument("--sizes", default="1,100")
    parser.add_argument("--write", action="store_true", help="refresh its section in benchmarks/RESULTS.md")
    args = parser.parse_args()
    from cafa_mlflow.embed.sequences import SequenceEmbedder
    from cafa_mlflow.io.fasta import read_fasta
    from cafa_mlflow.predictors.base import Predictor

    (ensemble, wall, cpu) = timed(Predictor.load, args.model)
    print(f"load: {wall:.1f} s wall, {cpu:.1f} CPU-s")
    ensemble.set_threads(args.threads)
    if args.engine:
        from cafa_mlflow.config.params_file import load_params
        from cafa_mlflow.config.schema import Params
        from cafa_mlflow.data.search_engine import SearchEngine

        params = Params.from_dict(load_params(ROOT / "params.yaml"))
        for name in ("homology", "reference"):
            if name in ensemble.members:
                engine = SearchEngine.from_block(getattr(params, name))
                ensemble.members[name].use_engine(dataclasses.replace(engine, engine=args.engine))
    embedder = SequenceEmbedder(dataclasses.replace(ensemble.embed, esm_model=args.encoder))
    records = [(r.id, r.sequence) for r in read_fasta(DATA / "test/test_sequences.fasta.xz")]
    sizes = [int(s) for s in args.sizes.split(",")]
    pool = random.Random(0).sample(records, sum(sizes) * (args.repeats + 1))
    load, lines = os.getloadavg()[0], []
    for size in sizes:
        runs = []
        for k in range(args.repeats + 1):
            batch, pool = pool[:size], pool[size:]
            steps = request_times(ensemble, embedder, batch)
            if k:
                runs.append(steps)
        lines.append(f"{size} protein(s) per request, median of {args.repeats} after a warm-up:\n")
        lines.append("| step | wall (s) | CPU (s) |\n|---|---|---|")
        for step in runs[0]:
            wall = statistics.median(r[step][0] for r in runs)
            cpu = statistics.median(r[step][1] for r in runs)
            lines.append(f"| {step} | {wall:.3f} | {cpu:.3f} |")
        total = statistics.median(sum(w for w, _ in r.values()) for r in runs)
        lines.append(
            f"| total | {total:.3f} | {statistics.median(sum(c for _, c in r.values()) for r in runs):.3f} |\n"
        )
    text = "\n".join(lines)
    print(text)
    if args.write:
        engine = args.engine or "as saved"
        write_section(
            f"## Serving time per member ({engine})\n\n{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
            f"{os.cpu_count()} CPU cores, load average {load:.1f} at the start (shared machine); `python "
            f"benchmarks/member_latency.py --model {args.model} --threads {args.threads} --sizes {args.sizes} "
            f"--repeats {args.repeats}{' --engine ' + args.engine if args.engine else ''}` (in one process, as the "
            "served model predicts; CPU includes the aligner's processes).\n\n" + text
        )


if __name__ == "__main__":
    main()
