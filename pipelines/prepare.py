"""`prepare`: raw CAFA files -> prepared dataset folder; logs dataset statistics and plots."""

from __future__ import annotations

import sys
from pathlib import Path

from cafa_mlflow import tracking
from cafa_mlflow.dataset import prepare_dataset
from pipelines.common import parse_params, run_main

SECTIONS = ("data", "prepare")


def main(argv=None) -> dict:
    params, _ = parse_params(argv, "cafa prepare", __doc__, SECTIONS)
    from cafa_mlflow.stats import dataset_stats, flat_metrics, print_stats, stats_figures

    with tracking.start_run(params, "prepare", extra_params={**params["data"], **params["prepare"]}):
        summary = prepare_dataset(params["data"], params["prepare"], params["prepare"]["out"])
        tracking.log_metrics(summary)
        out = Path(params["prepare"]["out"])
        stats = dataset_stats(out / "train.fasta", params["data"]["train_terms"], params["data"]["obo"])
        print_stats(stats)
        tracking.log_metrics(flat_metrics(stats))
        for name, fig in stats_figures(stats).items():
            tracking.log_figure(fig, f"stats/{name}")
        tracking.log_artifacts([out / "terms.tsv", out / "summary.json"], "prepared")
        print(f"prepared dataset in {out}: {summary}")
    return summary


if __name__ == "__main__":
    sys.exit(run_main(main))
