"""The one place that talks to MLflow: runs, the shared parameter vocabulary, metrics, plots, registry."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
from mlflow.tracking import MlflowClient

from cafa_mlflow.config.params_file import flatten
from cafa_mlflow.console import configure_logging
from cafa_mlflow.tracking import recovery, run_meta

if TYPE_CHECKING:
    from cafa_mlflow.config.schema import Params

log = logging.getLogger(__name__)
CHAMPION = "champion"
SELECTION_METRIC = "val_f_w_mean"
MAX_PARAM_CHARS = 6000
_BAD_NAME = re.compile(r"[^0-9A-Za-z_\-./ ]")
_LAUNCHER_EXPERIMENT = os.environ.get("MLFLOW_EXPERIMENT_ID")
PARENT_RUN_ENV = "CAFA_PARENT_RUN_ID"  # set by `main` for the steps it runs


def configure(params: Params | Mapping[str, Any]) -> str:
    """Point MLflow at the tracking store ($MLFLOW_TRACKING_URI wins over params.yaml) and experiment."""
    params = _plain(params)
    uri = os.environ.get("MLFLOW_TRACKING_URI") or params["tracking"]["uri"]
    recovery.check_server(uri)  # a dead server: one line in seconds, not minutes of retries
    mlflow.set_tracking_uri(uri)
    with recovery.store_lock(uri):
        # under `mlflow run` the launcher chose the experiment (read at import: set_experiment sets it too)
        if not _LAUNCHER_EXPERIMENT and not os.environ.get("MLFLOW_RUN_ID"):
            mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME") or params["tracking"]["experiment"])
    return uri


def standard_params(params: Params | Mapping[str, Any]) -> dict[str, Any]:
    """The vocabulary every run logs, so runs of different entry points line up in the UI."""
    params = _plain(params)
    embed, train, prep = params.get("embed", {}), params.get("train", {}), params["prepare"]
    encoder = run_meta.encoder_label(params)
    return {
        "esm_model": encoder,
        # `mlflow run -P esm_model=PATH` logs the raw value on the parent first (params are immutable):
        # `encoder` is the one key whose value is the same label in every run
        "encoder": encoder,
        "strategy": embed.get("strategy", ""),
        "layer": embed.get("layer", ""),
        "model": train.get("model", ""),
        "loss": train.get("loss", ""),
        "subsample": prep["subsample"],
        "min_count": prep["min_count"],
        "val_fraction": prep["val_fraction"],
        "seed": prep["seed"],
        "split": prep.get("split", ""),
        "split_min_identity": prep.get("split_min_identity", ""),
        # the validation scheme under the `-P` names that set it
        **{f"folds.{k}": v for k, v in params.get("folds", {}).items()},
    }


@contextmanager
def start_run(
    params: Params | Mapping[str, Any],
    entry_point: str,
    run_name: str | None = None,
    nested: bool | None = None,
    tags: Mapping[str, str] | None = None,
    extra_params: Mapping[str, Any] | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """Open (or join, under `mlflow run`) a run tagged with its entry point; log the shared params.
    Inside another run (the `main` chain) it is a nested child run unless `nested` says otherwise."""
    configure(params)
    configure_logging(logging.getLogger().getEffectiveLevel())  # again: MLflow set its own levels at import
    # a step that `main` started as a child process nests under main's run
    parent = os.environ.get(PARENT_RUN_ENV) if mlflow.active_run() is None else None
    nested = (mlflow.active_run() is not None or parent is not None) if nested is None else nested
    with mlflow.start_run(
        run_name=run_name or run_meta.run_name(entry_point, _plain(params)),
        nested=nested,
        parent_run_id=parent,
        log_system_metrics=bool(_plain(params)["tracking"].get("system_metrics")),
        tags={"entry_point": entry_point, **recovery.process_tags(), **(tags or {})},
    ) as run:
        recovery.mark_stale_runs(run.info.experiment_id, entry_point, run.info.run_id)
        run_meta.mark_training_experiment(run.info.experiment_id)
        with run_meta.record_failure():
            log_params({**standard_params(params), **(extra_params or {})})
            yield run


def log_params(values: Mapping[str, Any]) -> None:
    """Log flat params; keys already on the run (e.g. set by `mlflow run -P`) are left as they are."""
    run = mlflow.active_run()
    existing = MlflowClient().get_run(run.info.run_id).data.params if run else {}
    fresh = {_name(k): _param_value(v) for k, v in flatten(values).items() if _name(k) not in existing}
    if fresh:
        mlflow.log_params(fresh)


def log_metrics(values: Mapping[str, Any], step: int | None = None, prefix: str = "") -> None:
    """Log numeric values (nested dicts are flattened with '_'); None and non-numbers are skipped."""
    flat = {}
    for key, value in flatten(values).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            continue
        flat[_name(prefix + key.replace(".", "_"))] = float(value)
    if flat:
        mlflow.log_metrics(flat, step=step)


def set_tags(tags: Mapping[str, Any]) -> None:
    mlflow.set_tags({k: str(v) for k, v in tags.items()})


def log_figure(fig, artifact_file: str) -> None:
    import matplotlib.pyplot as plt

    mlflow.log_figure(fig, artifact_file)
    plt.close(fig)


def log_artifacts(paths: list[str | os.PathLike], artifact_path: str | None = None) -> None:
    for path in paths:
        if Path(path).exists():
            mlflow.log_artifact(str(path), artifact_path)


def active_run_id() -> str | None:
    run = mlflow.active_run()
    return run.info.run_id if run else None


def register_and_promote(
    model_uri: str,
    name: str,
    score: float,
    split_id: str,
    metric: str = SELECTION_METRIC,
    *,
    kind: str = "model",  # neural | ensemble | stacker: callers say which
    members: Sequence[str] = (),
    encoder: str = "",
) -> tuple[str, bool]:
    """Register `model_uri` under `name` with a description and tags (run_meta.describe_version); give it the
    champion alias only when `score` beats the current champion's on the same validation split. The alias is
    the only record of who is champion. Returns (version, promoted)."""
    client = MlflowClient()
    recovery.mark_incomplete_versions(name, CHAMPION)
    # one call creates the version with the tags that identify it; a kill after it leaves 'registering'
    identity = {
        metric: f"{score:.6f}",
        run_meta.SPLIT_TAG: split_id,
        recovery.STATUS_TAG: "registering",
        **recovery.process_tags(),
    }
    version = mlflow.register_model(model_uri, name, tags=identity).version
    run_meta.describe_version(
        name, version, kind=kind, score=score, split=split_id, members=members, encoder=encoder, metric=metric
    )
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        champion = None
    promote = champion is None
    if champion is not None and _artifacts_gone(client, name, champion.version):
        promote = True  # a champion whose artifacts are missing or damaged cannot serve: any complete version wins
    elif champion is not None:
        same_split = champion.tags.get(run_meta.SPLIT_TAG) == split_id
        best = float(champion.tags.get(metric, "-inf"))
        promote = same_split and score > best
        if not same_split:
            log.warning(
                "champion v%s was validated on another split (%s), so v%s cannot be compared with it and "
                "does not take the alias; set it by hand with MlflowClient().set_registered_model_alias",
                champion.version,
                champion.tags.get(run_meta.SPLIT_TAG),
                version,
            )
    if promote:
        client.set_registered_model_alias(name, CHAMPION, version)
    # what happened at registration; who is champion now is the alias alone
    client.set_model_version_tag(name, version, "promoted", str(promote).lower())
    client.set_model_version_tag(name, version, recovery.STATUS_TAG, "complete")
    return str(version), promote


def _artifacts_gone(client: MlflowClient, name: str, version: str) -> bool:
    from cafa_mlflow.serving.model_loader import version_problem

    problem = version_problem(client, name, version)
    if problem is not None:
        log.warning("champion v%s of %s cannot be loaded (%s): the new version takes the alias", version, name, problem)
    return problem is not None


def _plain(params: Params | Mapping[str, Any]) -> Mapping:
    """params.yaml as nested mappings (a schema.Params or a dict)."""
    return params.to_dict() if hasattr(params, "to_dict") else params


def _name(key: str) -> str:
    return _BAD_NAME.sub("_", key)


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_PARAM_CHARS else text[: MAX_PARAM_CHARS - 3] + "..."


def latest_child_metrics(parent_run_id: str, keys: tuple[str, ...]) -> dict[str, float]:
    """`keys` among the metrics of the newest run nested under `parent_run_id` (empty when none)."""
    runs = MlflowClient().search_runs(
        [mlflow.get_run(parent_run_id).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    metrics = runs[0].data.metrics if runs else {}
    return {k: metrics[k] for k in keys if k in metrics}


def log_stats(stats: Any, artifact_dir: str = "stats") -> list[str]:
    """Log the tables (mlflow.log_table: JSON the UI shows as tables), the text report and the figures into
    the active MLflow run under `artifact_dir`; return the artifact paths."""
    from cafa_mlflow.data.stats import format_stats, stats_figures, stats_tables  # matplotlib: only here

    paths = []
    for name, table in stats_tables(stats).items():
        mlflow.log_table(table, f"{artifact_dir}/{name}.json")
        paths.append(f"{artifact_dir}/{name}.json")
    mlflow.log_text(format_stats(stats), f"{artifact_dir}/summary.txt")
    paths.append(f"{artifact_dir}/summary.txt")
    for name, fig in stats_figures(stats).items():
        log_figure(fig, f"{artifact_dir}/{name}")
        paths.append(f"{artifact_dir}/{name}")
    return paths
