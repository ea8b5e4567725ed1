"""Where a served request's time goes, without the HTTP server: the logged champion loaded as `mlflow models serve`
loads it, requests of bundled test proteins through its `predict` (embedding, the members side by side, the
combination, the submission's rounding), then MLflow's own scoring-server JSON of each answer in both layouts the
model offers (`orient`: records, the default, and list), on the real answers.

    python benchmarks/serving_split.py --tracking-uri sqlite:///mlflow.db [--model-uri models:/cafa-go@champion]
        [--size 100] [--repeats 5]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import time
from pathlib import Path

from results_md import command_line, publish, stamp  # benchmarks/results_md.py (run as `python benchmarks/<file>.py`)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT / "data/sample"


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the aligners)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(fn, *args):
    """(result, wall s, CPU s)."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    out = fn(*args)
    return out, time.perf_counter() - wall, cpu_seconds() - cpu


def to_json(answer) -> int:
    """Bytes of MLflow's scoring-server response for `answer` (what `mlflow models serve` sends)."""
    from mlflow.pyfunc.scoring_server import predictions_to_json

    buffer = io.StringIO()
    predictions_to_json(answer, buffer)
    return len(buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    parser.add_argument("--model-uri", default="models:/cafa-go@champion")
    parser.add_argument("--size", type=int, default=100, help="proteins per request")
    parser.add_argument("--repeats", type=int, default=5, help="timed requests after one warm-up")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md as it is")
    args = parser.parse_args()
    import mlflow
    import pandas as pd

    from cafa_mlflow.io.fasta import read_fasta
    from cafa_mlflow.serving.pyfunc import oriented

    mlflow.set_tracking_uri(args.tracking_uri)
    model = mlflow.pyfunc.load_model(args.model_uri)
    records = random.Random(args.seed).sample(
        list(read_fasta(DATA / "test/test_sequences.fasta.xz")), args.size * (args.repeats + 1)
    )
    steps: dict[str, list[tuple[float, float]]] = {}
    rows, size_of = 0, {}
    for k in range(args.repeats + 1):
        batch = records[k * args.size : (k + 1) * args.size]
        frame = pd.DataFrame({"protein": [r.id for r in batch], "sequence": [r.sequence for r in batch]})
        answer, wall, cpu = timed(model.predict, frame)
        timings = {"model predict": (wall, cpu)}
        for orient in ("records", "list"):
            size_of[orient], wall, cpu = timed(to_json, oriented(answer, orient))
            timings[f"JSON of the answer, orient={orient}"] = (wall, cpu)
        if k:  # the first request warms up
            rows += len(answer)
            for step, value in timings.items():
                steps.setdefault(step, []).append(value)
    lines = ["| step | wall s (median) | CPU s (median) | response MB (last request) |", "|---|---|---|---|"]
    for step, values in steps.items():
        mb = next((f"{size_of[o] / 1e6:.1f}" for o in size_of if step.endswith(o)), "")
        wall, cpu = statistics.median(v[0] for v in values), statistics.median(v[1] for v in values)
        lines.append(f"| {step} | {wall:.2f} | {cpu:.2f} | {mb} |")
    predict_wall = statistics.median(v[0] for v in steps["model predict"])
    publish(
        "## Serving: where a request's time goes\n\n"
        f"{stamp()}; {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at the end; command "
        f"`{command_line('serving_split.py')}`. The model {args.model_uri} loaded with `mlflow.pyfunc.load_model` in "
        f"one process, {args.repeats} requests of {args.size} bundled test proteins after a warm-up (new ones each, "
        f"about {rows / args.repeats:,.0f} answer rows each), then MLflow's `scoring_server.predictions_to_json` of "
        f"each answer as records (the default) and as one list per column (`orient: list`). Without the server "
        f"the model answers {args.size / predict_wall:.1f} proteins/s.\n\n" + "\n".join(lines) + "\n",
        write=not args.no_write,
    )


if __name__ == "__main__":
    main()
