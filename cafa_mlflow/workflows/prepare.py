"""The `prepare` workflow: the prepared dataset plus its statistics, tables and plots in the active run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cafa_mlflow.data.prepared import prepare_dataset
from cafa_mlflow.io.text import check_writable
from cafa_mlflow.tracking import runs

if TYPE_CHECKING:
    from cafa_mlflow.config.schema import Params


def prepare_and_describe(params: Params) -> dict:
    """Prepare `data` into prepare.out, log the summary and the training pool's statistics; returns the summary."""
    from cafa_mlflow.data.stats import dataset_stats, print_stats

    out = Path(params.prepare.out)
    check_writable(out, folder=True, replace=True)
    summary = prepare_dataset(params.data.to_dict(), params.prepare.to_dict(), out)
    runs.log_metrics(summary)
    stats = dataset_stats(out / "train.fasta", params.data.train_terms, params.data.obo)
    print_stats(stats)
    runs.log_stats(stats)  # tables, text and figures as artifacts: metrics stay the shared vocabulary
    runs.log_artifacts([out / "terms.tsv", out / "summary.json"], "prepared")
    return summary
