"""`train`: a neural GO-term classifier fitted on the prepared `train` split; the `val` split drives early
stopping, the per-epoch CAFA metric and the thresholds. Logs params, per-epoch and final metrics, plots,
the vocabulary and thresholds, saves val/test predictions and the model, and registers a pyfunc model."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from cafa_mlflow.config.flags import parse_params
from cafa_mlflow.console import run_entry
from cafa_mlflow.tracking import runs
from cafa_mlflow.workflows.train import train_neural


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    params, _ = parse_params(argv, "cafa train", __doc__, own="train")
    with runs.start_run(params, "train"):
        metrics = train_neural(params)
    shown = {k: round(v, 4) for k, v in metrics.items() if k.startswith(("val_f_w", "test_f_w"))}
    print(f"train: {shown}; predictions in {params.outputs.predictions}/neural")
    return metrics


if __name__ == "__main__":
    sys.exit(run_entry(main))
