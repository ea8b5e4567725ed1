"""`main`: the whole chain on the bundled sample, each step a nested MLflow run under one parent:
prepare -> embed -> naive, homology, knn -> train -> ensemble -> evaluate -> predict."""

from __future__ import annotations

import sys

from cafa_mlflow import tracking
from cafa_mlflow.console import run_entry
from cafa_mlflow.embed import fetch_weights
from cafa_mlflow.flags import parse_params
from cafa_mlflow.workflows.chain import run_chain, step_table
from cafa_mlflow.workflows.common import check_outputs


def main(argv=None) -> list:
    params, _ = parse_params(argv, "cafa main", __doc__, own=None)
    fetch_weights(params.embed.esm_model)  # offline without weights: stop now, not after prepare
    check_outputs(params)  # likewise an output folder that cannot be written
    with tracking.start_run(params, "main") as parent:
        rows = run_chain(params, parent.info.run_id)
    print(f"\n{step_table(rows)}\n\nSubmission: {params.predict.out}")
    print(f"Runs: `make ui` (or .venv/bin/mlflow ui --backend-store-uri {tracking.configure(params)} --host 127.0.0.1)")
    return rows


if __name__ == "__main__":
    sys.exit(run_entry(main))
