"""`tune`: an Optuna study over `train`'s hyperparameters (search space: params.yaml tune.space). One MLflow
parent run per invocation, one nested child run per trial logged exactly like a `train` run; the parent gets
the best value and params, the trials table and Optuna's plots. Resumes by study name; many workers (any
machines) can share one study through `--storage` (a SQLAlchemy URL) and stop at exactly `--n-trials`."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from cafa_mlflow.config.flags import parse_params
from cafa_mlflow.console import run_entry
from cafa_mlflow.workflows.tune import run_study


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    params, _ = parse_params(argv, "cafa tune", __doc__, own="tune")
    summary = run_study(params)
    best = summary.get("best_value")
    print(
        f"tune: study {params.tune.study_name!r}: {summary.get('n_trials')} trials "
        f"({summary.get('n_complete')} complete, {summary.get('n_pruned')} pruned, {summary.get('n_fail')} failed); "
        f"best {params.tune.metric} = {best}"
        + (f"; params in {summary['best_params_file']}" if best is not None else "")
    )
    return summary


if __name__ == "__main__":
    sys.exit(run_entry(main))
