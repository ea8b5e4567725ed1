"""What runs and model versions say about themselves in the MLflow UI: the experiment kind, run names,
the failure reason of a failed run, the prepared splits as dataset inputs, registry descriptions and tags."""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from cafa_mlflow import console
from cafa_mlflow.predictors.registry import MEMBER_STEPS

# MLflow 3's UI opens an experiment on its runs table only when it is tagged as model training
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
ERROR_TAG = "error"  # a failed run's one-line reason
ERROR_CHARS = 500
# `member --predictor X` opens a run named after X
MEMBER_ENTRY_POINTS = tuple(name for name, (step, *_) in MEMBER_STEPS.items() if step == "member")
DATASET_CONTEXT = {"train": "training", "val": "validation", "test": "testing"}
SPLIT_TAG = "val_split"  # registry: the validation split a version was scored on (champion comparisons)


def mark_training_experiment(experiment_id: str) -> None:
    """Tag the experiment as model training (once), so the UI lands on the runs table, not GenAI Overview."""
    client = MlflowClient()
    if client.get_experiment(experiment_id).tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)


def ui_url(experiment_id: str | None, port: int = 5000) -> str:
    """The runs table of the experiment in `make ui`. MLflow 3.17's UI starts in its GenAI view (a browser
    setting, whatever the experiment's kind): `workflowType=machine_learning` opens the runs table."""
    page = f"experiments/{experiment_id}" if experiment_id else "experiments"
    return f"http://127.0.0.1:{port}/#/{page}?workflowType=machine_learning"


def print_ui_url(port: int = 5000) -> None:
    """`make ui`: print where the runs table is (the experiment of params.yaml in its tracking store)."""
    from cafa_mlflow.config.params_file import load_params

    tracking = load_params()["tracking"]
    client = MlflowClient(os.environ.get("MLFLOW_TRACKING_URI") or tracking["uri"])
    found = client.get_experiment_by_name(os.environ.get("MLFLOW_EXPERIMENT_NAME") or tracking["experiment"])
    print(f"runs table: {ui_url(found.experiment_id if found else None, port)}")


def encoder_label(params: Mapping) -> str:
    """The encoder as every run names it (param `encoder`): fair-esm name, `tiny:<file>` or `local:<file>`."""
    esm_model = params.get("embed", {}).get("esm_model") or ""
    if not esm_model:
        return ""
    from cafa_mlflow.embed import model_label  # lazy: torch only when a run needs the label

    return model_label(esm_model)


def run_name(entry_point: str, params: Mapping, detail: str = "") -> str:
    """A name that says what the run is: `train multitask focal tiny:esm2_tiny.pt`, `embed balanced
    esm2_t6_8M_UR50D`, `member homology`, `ensemble naive+homology+knn+neural`; `detail` is appended."""
    train, embed = params.get("train", {}), params.get("embed", {})
    if entry_point in MEMBER_ENTRY_POINTS:
        words = ["member", entry_point, encoder_label(params) if entry_point == "knn" else ""]
    elif entry_point == "train":
        words = ["train", train.get("model", ""), train.get("loss", ""), encoder_label(params)]
    elif entry_point == "embed":
        words = ["embed", embed.get("strategy", ""), encoder_label(params)]
    elif entry_point == "ensemble":
        block = params.get("ensemble", {})
        words = ["ensemble", block.get("method", ""), "+".join(block.get("members", []))]
    elif entry_point == "prepare":
        n = params.get("prepare", {}).get("subsample")
        words = ["prepare", f"{n} proteins" if n else "all proteins"]
    elif entry_point == "main":
        words = ["main", encoder_label(params)]
    elif entry_point == "tune":
        words = ["tune", params.get("tune", {}).get("study_name", "")]
    else:
        words = [entry_point]
    return " ".join(str(w) for w in [*words, detail] if w not in ("", None))


def logged_model_name(entry_point: str, params: Mapping, detail: str = "") -> str:
    """A distinct logged-model name (letters, digits, '-', '_'): `train-multitask-focal-tiny-esm2_tiny-pt`."""
    return re.sub(r"[^0-9A-Za-z_]+", "-", run_name(entry_point, params, detail)).strip("-")  # MLflow refuses . : / %


def error_line(err: BaseException) -> str:
    """`InputError: first line of the message`, at most ERROR_CHARS characters."""
    lines = str(err).strip().splitlines()
    text = f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 3] + "..."


def tag_failure(err: BaseException, run_id: str | None = None) -> str | None:
    """Set the `error` tag on `run_id`, else the active run, else $MLFLOW_RUN_ID (the `mlflow run` launcher's
    run, when the entry point failed before opening it). Returns the run id tagged, None when there is none."""
    active = mlflow.active_run()
    run_id = run_id or (active.info.run_id if active else None) or os.environ.get("MLFLOW_RUN_ID")
    if run_id:
        MlflowClient().set_tag(run_id, ERROR_TAG, error_line(err))
    return run_id


@contextmanager
def record_failure() -> Iterator[None]:
    """Inside an active run: an exception leaves its one-line reason as the run's `error` tag, then propagates
    (mlflow.start_run then ends the run as FAILED, or KILLED on Ctrl-C)."""
    try:
        yield
    except (Exception, KeyboardInterrupt) as err:
        tag_failure(err)
        raise


def log_dataset(proteins: pd.DataFrame, name: str, source: str, context: str) -> mlflow.data.Dataset:
    """Log a table of proteins (one row each) as a dataset input of the active run: the UI's Dataset column
    shows `name (digest)`, the run page its row count (the protein count) and schema."""
    import mlflow.data  # noqa: PLC0415

    with warnings.catch_warnings():  # MLflow's notes about local-path sources and integer columns: not ours to act on
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        dataset = mlflow.data.from_pandas(proteins.reset_index(drop=True), source=source, name=name)
        mlflow.log_input(dataset, context=context, tags={"proteins": str(len(proteins))})
    return dataset


def log_prepared_splits(prepared, splits: Sequence[str] = ("train", "val", "test")) -> dict[str, str]:
    """Log the prepared `splits` a run saw (a `dataset.Prepared`); test proteins come from its test.fasta.
    Names are `<split>@<split_id>` so runs on the same validation split line up. Returns {split: digest}."""
    out = {}
    for split in splits:
        if split == "test":
            if not prepared.test_fasta.exists():
                continue
            from cafa_mlflow.io.fasta import read_fasta  # noqa: PLC0415

            frame = pd.DataFrame([(r.id, len(r.sequence)) for r in read_fasta(prepared.test_fasta)])
            frame.columns = ["protein", "length"]
        else:
            frame = prepared.proteins.loc[prepared.proteins["split"] == split, ["protein", "taxon", "length"]]
        source = str(Path(prepared.root).resolve())
        dataset = log_dataset(frame, f"{split}@{prepared.split_id}", source, DATASET_CONTEXT.get(split, split))
        out[split] = dataset.digest
    return out


def describe_version(
    name: str,
    version: str | int,
    *,
    kind: str,
    score: float,
    split: str,
    members: Sequence[str] = (),
    encoder: str = "",
    metric: str = "val_f_w_mean",
) -> str:
    """Give a registered version a one-line description and tags saying what it is: `kind` (neural,
    ensemble, stacked), `members`, `encoder` (the validation split and score tags are set when the version is
    created: tracking.register_and_promote). Returns the description."""
    members_text = "+".join(members)
    text = (
        f"{kind}{f' of {members_text}' if members_text else ''}"
        f"{f' on {encoder}' if encoder else ''}: {metric}={score:.4f} on validation split {split}"
    )
    client = MlflowClient()
    client.update_model_version(name, str(version), description=text)
    tags = {"kind": kind, "members": members_text, "encoder": encoder}  # split and score: set at registration
    for key, value in tags.items():
        if value:
            client.set_model_version_tag(name, str(version), key, value)
    return text


def log_chain_summary(
    rows: Sequence[Mapping], submission: str | os.PathLike, final_metrics: Mapping[str, float] | None = None
) -> None:
    """On the `main` run: the final submission's validation/test metrics, its path (param) and size
    (metric `submission_bytes`), `seconds_<step>` per step and the step table (artifact steps.txt)."""
    from cafa_mlflow.tracking.metric_names import column_metrics  # noqa: PLC0415

    path = Path(submission)
    mlflow.log_param("submission", str(path))
    metrics = {f"seconds_{row['step']}": float(row["seconds"]) for row in rows}
    metrics.update(column_metrics({k: float(v) for k, v in (final_metrics or {}).items()}))
    if path.is_file():
        metrics["submission_bytes"] = float(path.stat().st_size)
    mlflow.log_metrics(metrics)
    mlflow.log_text(console.format_step_table(rows) + "\n", "steps.txt")


def record_on_launcher_run(err: BaseException) -> None:
    """A step that `mlflow run` launched and that failed before opening its run (e.g. offline without
    weights): give the launcher's run a name and the reason, instead of an empty nameless run."""
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if not run_id or mlflow.active_run() is not None:
        return
    try:
        tag_failure(err, run_id)
        step = os.path.basename(sys.argv[0]).removesuffix(".py") or "step"
        mlflow.MlflowClient().set_tag(run_id, "mlflow.runName", f"{step} (failed)")
    except Exception as problem:  # the store being the problem must not hide the user's error
        logging.getLogger(__name__).debug("could not record the failure on run %s: %s", run_id, problem)


console.ON_USER_ERROR.append(record_on_launcher_run)
