"""Seconds per step of the last `main` run (its `seconds_<step>` metrics in the MLflow store), optionally beside
a baseline run's (`--baseline-uri`, another store) and the machine's load during each step (`--load-log`).

    make main [ESM=tiny]; python benchmarks/main_job.py [--uri sqlite:///mlflow.db]
    python benchmarks/main_job.py --baseline-uri sqlite:////path/to/before/mlflow.db --load-log load.log \
        --section "## Main job time" --note "..."
Prints a table and refreshes the section (default "## Main job") of benchmarks/RESULTS.md. A load log has one
line per sample, `HH:MM:SS load1 load5 load15 ...` (UTC), e.g. `echo "$(date -u +%T) $(cat /proc/loadavg)"`.
"""

from __future__ import annotations

import argparse
import datetime
import os
from pathlib import Path

import mlflow
from results_md import write_section  # benchmarks/results_md.py (run as `python benchmarks/<file>.py`)

SECTION = "## Main job"
SCORES = ("val_f_w_mean", "test_f_w_mean")


def last_main(uri: str, experiment: str) -> tuple[mlflow.MlflowClient, mlflow.entities.Run]:
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs(
        [exp.experiment_id] if exp else [],
        "tags.entry_point = 'main' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise SystemExit(f"no finished main run in {uri}; run `make main` first")
    return client, runs[0]


def step_loads(client: mlflow.MlflowClient, run: mlflow.entities.Run, load_log: Path) -> dict[str, float]:
    """Mean 1-minute load average sampled while each child run (step) ran."""
    samples = []
    day = datetime.datetime.fromtimestamp(run.info.start_time / 1000, datetime.timezone.utc).date()
    for line in load_log.read_text().splitlines():
        clock, load1, *_ = line.split()
        at = datetime.datetime.combine(day, datetime.time.fromisoformat(clock), datetime.timezone.utc)
        samples.append((at.timestamp() * 1000, float(load1)))
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    out = {}
    for child in children:
        inside = [v for t, v in samples if child.info.start_time <= t <= (child.info.end_time or t)]
        if inside:
            out[child.data.tags.get("entry_point", child.info.run_name)] = sum(inside) / len(inside)
    return out


def seconds(run: mlflow.entities.Run) -> dict[str, float]:
    return {k[len("seconds_") :]: v for k, v in run.data.metrics.items() if k.startswith("seconds_")}


def table(run: mlflow.entities.Run, base: mlflow.entities.Run | None, loads: dict[str, float]) -> list[str]:
    now, before = seconds(run), seconds(base) if base else {}
    head = ["step", *(["before s"] if base else []), "seconds", *(["mean load"] if loads else [])]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for step, value in now.items():
        cells = [step, *([f"{before.get(step, float('nan')):.1f}"] if base else []), f"{value:.1f}"]
        rows.append("| " + " | ".join(cells + ([f"{loads[step]:.1f}"] if step in loads else [])) + " |")
    total = [f"**{sum(before.values()):.1f}**"] if base else []
    rows.append("| " + " | ".join(["**total**", *total, f"**{sum(now.values()):.1f}**"]) + " |")
    for key in SCORES:
        cells = [f"ensemble {key}", *([f"{base.data.metrics.get(key, float('nan')):.4f}"] if base else [])]
        rows.append("| " + " | ".join([*cells, f"{run.data.metrics.get(key, float('nan')):.4f}"]) + " |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--uri", default="sqlite:///mlflow.db")
    ap.add_argument("--experiment", default="cafa-mlflow")
    ap.add_argument("--baseline-uri", default=None, help="a store whose last main run is the 'before' column")
    ap.add_argument("--load-log", type=Path, default=None, help="load samples taken during the run (see above)")
    ap.add_argument("--section", default=SECTION, help="the RESULTS.md section to refresh")
    ap.add_argument("--note", default="", help="free text added under the table (e.g. machine load)")
    args = ap.parse_args()
    client, run = last_main(args.uri, args.experiment)
    base = last_main(args.baseline_uri, args.experiment)[1] if args.baseline_uri else None
    loads = step_loads(client, run, args.load_log) if args.load_log else {}
    started = datetime.datetime.fromtimestamp(run.info.start_time / 1000).strftime("%Y-%m-%d")
    text = (
        f"{args.section}\n\nRun {run.info.run_id} ({started}, {os.cpu_count()} CPU cores), encoder "
        f"{run.data.params.get('esm_model', '?')}, prepare.subsample={run.data.params.get('subsample', '?')}; "
        "command `make main` (here `make main ESM=tiny`, offline), then `python benchmarks/main_job.py`"
        + (f"; before: run {base.info.run_id} of {args.baseline_uri}" if base else "")
        + ".\n\n"
        + "\n".join(table(run, base, loads))
        + (f"\n\n{args.note}" if args.note else "")
        + "\n"
    )
    print(text)
    write_section(text)


if __name__ == "__main__":
    main()
