"""`cafa compare` (`make compare`): the newest finished run of an entry point per distinct value of one parameter
(by default the newest `train` run per `loss`), side by side in the terminal (cafa_mlflow/tracking/compare.py
builds the table).

  cafa compare [--entry-point train] [--by loss] [--runs RUN_ID ...] [--all-metrics]
"""

from __future__ import annotations

import argparse
import os

from mlflow.tracking import MlflowClient

from cafa_mlflow.tracking.compare import find_runs, format_comparison


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--entry-point", default="train", help="runs tagged with this entry point")
    parser.add_argument("--by", default="loss", help="newest run per distinct value of this param")
    parser.add_argument("--runs", nargs="*", default=None, help="compare exactly these run ids instead")
    parser.add_argument("--all-metrics", action="store_true", help="also timings, counts and system metrics")


def run_compare(args: argparse.Namespace) -> int:
    """`cafa compare`: the newest run per value of `--by` (or `--runs`), metrics side by side."""
    from cafa_mlflow.config.params_file import load_params

    params = load_params()
    import mlflow

    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI") or params["tracking"]["uri"])
    client = MlflowClient()
    if args.runs:
        runs = [client.get_run(run_id) for run_id in args.runs]
    else:
        experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or params["tracking"]["experiment"]
        runs = find_runs(experiment, args.entry_point, args.by, client)
    print(format_comparison(runs, args.all_metrics))
    return 0
