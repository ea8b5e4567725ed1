"""`ensemble`: the members combined (ensemble.method: blend = per-aspect simplex weights, stacker = learned)
and fitted on their out-of-fold predictions (ensemble.fit_on), then GO-consistent, capped, rounded predictions
of val and test, one registered pyfunc model (champion when its unfitted validation score is better)."""

from __future__ import annotations

import sys

from cafa_mlflow.config.flags import parse_params
from cafa_mlflow.console import run_entry
from cafa_mlflow.tracking import runs
from cafa_mlflow.workflows.ensemble import fit_ensemble


def main(argv=None) -> dict[str, float]:
    params, _ = parse_params(argv, "cafa ensemble", __doc__, own="ensemble")
    with runs.start_run(params, "ensemble"):
        metrics = fit_ensemble(params)
    print(f"ensemble: val_f_w_mean={metrics['val_f_w_mean']:.3f}; predictions in {params.outputs.predictions}/ensemble")
    return metrics


if __name__ == "__main__":
    sys.exit(run_entry(main))
