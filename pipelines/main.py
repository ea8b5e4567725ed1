"""`main`: the whole chain on the bundled sample, each step a nested MLflow run under one parent:
prepare -> embed -> naive, homology, knn -> train -> ensemble -> evaluate -> predict."""

from __future__ import annotations

import sys

from cafa_mlflow.config.flags import parse_params
from cafa_mlflow.console import final_message, run_entry
from cafa_mlflow.embed import fetch_weights
from cafa_mlflow.tracking import runs
from cafa_mlflow.tracking.run_meta import log_chain_summary, ui_url
from cafa_mlflow.workflows.chain import check_outputs, final_metrics, run_chain


def main(argv=None) -> list:
    params, _ = parse_params(argv, "cafa main", __doc__, own=None)
    params.require_oof()  # the ensemble's fit_on=oof needs folds.k >= 2: stop now, not after the members
    fetch_weights(params.embed.esm_model)  # offline without weights: stop now, not after prepare
    check_outputs(params)  # likewise an output folder that cannot be written
    with runs.start_run(params, "main") as parent:
        rows = run_chain(params, parent.info.run_id)
        log_chain_summary(rows, params.predict.out, final_metrics(params))
    print(f"\n{final_message(rows, params.predict.out, ui_url(parent.info.experiment_id))}")
    return rows


if __name__ == "__main__":
    sys.exit(run_entry(main))
