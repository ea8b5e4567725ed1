"""Seconds per step of the last `main` run (its `seconds_<step>` metrics in the MLflow store).

    make main [ESM=tiny]; python benchmarks/main_job.py [--uri sqlite:///mlflow.db]
Prints a table and refreshes the "## Main job" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import os

import mlflow
from results_md import write_section  # benchmarks/results_md.py (run as `python benchmarks/<file>.py`)

SECTION = "## Main job"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--uri", default="sqlite:///mlflow.db")
    ap.add_argument("--experiment", default="cafa-mlflow")
    ap.add_argument("--note", default="", help="free text added under the table (e.g. machine load)")
    args = ap.parse_args()
    client = mlflow.MlflowClient(args.uri)
    exp = client.get_experiment_by_name(args.experiment)
    runs = client.search_runs(
        [exp.experiment_id],
        "tags.entry_point = 'main' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise SystemExit(f"no finished main run in {args.uri}; run `make main` first")
    run = runs[0]
    steps = {k[len("seconds_") :]: v for k, v in run.data.metrics.items() if k.startswith("seconds_")}
    rows = ["| step | seconds |", "|---|---|"] + [f"| {k} | {v:.1f} |" for k, v in steps.items()]
    rows.append(f"| **total** | **{sum(steps.values()):.1f}** |")
    started = datetime.datetime.fromtimestamp(run.info.start_time / 1000).strftime("%Y-%m-%d")
    text = (
        f"{SECTION}\n\nRun {run.info.run_id} ({started}, {os.cpu_count()} CPU cores), encoder "
        f"{run.data.params.get('esm_model', '?')}, prepare.subsample={run.data.params.get('subsample', '?')}; "
        "command `make main` (here `make main ESM=tiny`, offline), then `python benchmarks/main_job.py`.\n\n"
        + "\n".join(rows)
        + (f"\n\n{args.note}" if args.note else "")
        + "\n"
    )
    print(text)
    write_section(text)


if __name__ == "__main__":
    main()
