"""Runs side by side (`cafa compare`, pipelines/compare.py): the newest finished run of an entry point per
distinct value of one parameter (by default the newest `train` run per `loss`), with the metric columns they
share."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from cafa_mlflow.errors import ConfigError
from cafa_mlflow.tracking.metric_names import metric_family

SHOWN_PARAMS = ("encoder", "model", "loss", "strategy", "lr", "hidden_dim", "epochs")
SHOWN_FAMILIES = ("cafa", "f1", "training")  # the rest (timings, counts, system) with --all-metrics


def newest_per_value(runs: Sequence[Run], by: str) -> list[Run]:
    """From runs sorted newest first, the first run of each distinct value of param `by` (runs without it
    are skipped), in order of first appearance."""
    seen: dict[str, Run] = {}
    for run in runs:
        value = run.data.params.get(by)
        if value is not None and value not in seen:
            seen[value] = run
    return list(seen.values())


def find_runs(
    experiment: str, entry_point: str = "train", by: str = "loss", client: MlflowClient | None = None
) -> list[Run]:
    """The newest FINISHED run with tag entry_point=`entry_point` per value of param `by`."""
    client = client or MlflowClient()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise ConfigError(f"no experiment {experiment!r} in {client.tracking_uri}; run `make main` first")
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.entry_point = '{entry_point}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1000,
    )
    return newest_per_value(runs, by)


def comparison_table(runs: Sequence[Run], all_metrics: bool = False) -> pd.DataFrame:
    """Rows: run name, shown params, then the metrics every run has (final values), sorted by name;
    columns: one per run (its run name)."""
    shared = set.intersection(*(set(r.data.metrics) for r in runs)) if runs else set()
    metrics = sorted(k for k in shared if all_metrics or metric_family(k) in SHOWN_FAMILIES)
    params = [p for p in SHOWN_PARAMS if any(p in r.data.params for r in runs)]
    columns = {}
    for run in runs:
        values = {"run id": run.info.run_id[:8], **{p: run.data.params.get(p, "") for p in params}}
        values.update({m: f"{run.data.metrics[m]:.4f}" for m in metrics})
        columns[run.info.run_name or run.info.run_id[:8]] = values
    return pd.DataFrame(columns)


def format_comparison(runs: Sequence[Run], all_metrics: bool = False) -> str:
    if len(runs) < 2:
        return (
            f"{len(runs)} run(s) to compare; train another variant first, e.g. "
            "`mlflow run . -e train --env-manager local -P loss=focal` (or `cafa train --loss focal`)"
        )
    return comparison_table(runs, all_metrics).to_string()


def metric_keys(experiment_names: Iterable[str], client: MlflowClient | None = None) -> set[str]:
    """The union of metric keys over every run of the named experiments (in the current tracking store)."""
    client = client or MlflowClient()
    ids = [e.experiment_id for name in experiment_names if (e := client.get_experiment_by_name(name))]
    keys: set[str] = set()
    if not ids:
        return keys
    token = None
    while True:
        page = client.search_runs(ids, max_results=1000, page_token=token)
        for run in page:
            keys.update(run.data.metrics)
        token = page.token
        if not token:
            return keys
