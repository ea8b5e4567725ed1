"""The neural member's training workflow: fit on `train`, early stopping / thresholds on `val`, scores of
val and test, plots and tables, the saved member and (optionally) a registered pyfunc model. Runs inside the
caller's MLflow run (`cafa train`, or a `cafa tune` trial)."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cafa_mlflow.data.prepared import Prepared
from cafa_mlflow.evaluation.reports import write_history
from cafa_mlflow.evaluation.scorer import Scorer, f1_at_thresholds, flat_metrics
from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.go.ontology import load_obo
from cafa_mlflow.io.text import check_writable
from cafa_mlflow.predictors.base import EMBEDDING, ProteinSet, TrainSet
from cafa_mlflow.predictors.naive import repeat_row, term_frequencies
from cafa_mlflow.predictors.neural import NeuralPredictor
from cafa_mlflow.predictors.neural.plots import loss_figure, pr_figure
from cafa_mlflow.tracking import run_meta, runs
from cafa_mlflow.tracking.metric_names import column_metrics
from cafa_mlflow.workflows.common import (
    bind_encoder_and_load,
    ensure_prepared,
    finish_member,
    member_folder,
    require_val,
    split_scorer,
    write_member,
)
from cafa_mlflow.workflows.packaging import package_and_register

if TYPE_CHECKING:
    from cafa_mlflow.config.schema import Params
    from cafa_mlflow.go.ontology import Ontology

NAME = "neural"
SHARED_NAMES = ("seed", "val_fraction", "top_k")  # train keys whose plain name is prepare's in every run


def run_params(params: Params) -> dict[str, Any]:
    """The train block as logged: keys shared with prepare as `train_<key>`, plus `epochs` (= max_epochs)."""
    block = params.train.to_dict()
    return {**{(f"train_{k}" if k in SHARED_NAMES else k): v for k, v in block.items()}, "epochs": block["max_epochs"]}


def input_example(proteins: ProteinSet, n: int = 2) -> pd.DataFrame:
    """A few validation proteins in the served model's input format (sequence or pooled embedding)."""
    frame = pd.DataFrame({"protein": proteins.ids[:n]})
    if proteins.sequences is not None:
        frame["sequence"] = proteins.sequences[:n]
    else:
        vectors = proteins.embeddings if proteins.embeddings is not None else _chunk_means(proteins.chunks, n)
        frame[EMBEDDING] = list(np.asarray(vectors[:n], dtype=np.float32))
    return frame


def _chunk_means(chunks: Any, n: int) -> np.ndarray:
    x, mask = chunks.batch(np.arange(n))
    return (x.sum(1) / mask.sum(1, keepdim=True)).numpy()


def log_plots_and_tables(predictor: NeuralPredictor, curves: dict, prepared: Prepared) -> None:
    """PR curves per aspect, loss curve, thresholds table and term vocabulary as run artifacts."""
    for aspect, (unweighted, weighted) in curves.items():
        runs.log_figure(pr_figure(aspect, unweighted, weighted), f"plots/pr_{aspect}.png")
    runs.log_figure(loss_figure(predictor.result.history, predictor.result.best_epoch), "plots/loss.png")
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "thresholds.tsv"
        predictor.thresholds.to_frame(predictor.terms, predictor.term_aspect).to_csv(table, sep="\t", index=False)
        runs.log_artifacts([table], "thresholds")
    runs.log_artifacts([prepared.root / "terms.tsv"], "vocabulary")


def train_neural(params: Params, epoch_callbacks: Sequence = (), register: bool = True) -> dict[str, float]:
    """Fit, evaluate, save and log inside the caller's active MLflow run; returns the final flat metrics."""
    check_writable(member_folder(params, NAME), folder=True, replace=True)  # before any work
    tp = params.train
    runs.log_params(run_params(params))
    prepared, ontology = prepared_with_val(params)
    predictor = NeuralPredictor(tp)
    y_train, y_val = prepared.split_labels("train"), prepared.split_labels("val")
    train = bind_encoder_and_load(predictor, params, prepared, "train", labels=y_train)
    val = bind_encoder_and_load(predictor, params, prepared, "val", labels=y_val)
    scorer = split_scorer(prepared, ontology, "val", tp.threshold_step)
    log_naive_baseline(y_train, val.ids, prepared.term_aspect, scorer, tp.min_score)
    esm_model, alphabet = encoder_to_finetune(params)
    fit_logged(predictor, train, val, scorer, [*epoch_callbacks], esm_model, alphabet)
    predictions = {"val": predictor.predict(val)}
    val_curves = scorer.curves(predictions["val"])  # scored once: metrics here, PR plots below
    metrics = val_metrics(predictor, scorer, val_curves, predictions["val"], y_val, prepared.term_aspect)
    final, predictions, test_metrics = finish_member(
        refitter(params, predictor.result.best_epoch, finetune=esm_model is not None),
        predictor,
        params,
        prepared,
        ontology,
        predictions,
        scored=("test",),
        threshold_step=tp.threshold_step,
    )
    metrics.update(test_metrics)
    metrics.update({"best_epoch": predictor.result.best_epoch, "epochs_run": len(predictor.result.history)})
    # one step past the last epoch: these (best weights restored) are the run's latest values
    runs.log_metrics(column_metrics(metrics), step=len(predictor.result.history) + 1)
    history = predictor.result.history  # history.csv for `dvc plots show`: loss and val per epoch, in the swap
    out = write_member(
        member_folder(params, NAME), final, predictions, metrics, lambda f: write_history(history, f / "history.csv")
    )
    log_plots_and_tables(predictor, val_curves, prepared)
    registered = package_and_register(
        params,
        out,
        "train",
        (metrics["val_f_w_mean"], prepared.split_id),
        register=register,
        kind="neural",
        encoder=run_meta.encoder_label(params.to_dict()),
        input_example=input_example(val),
    )
    if registered:
        runs.set_tags({"registered_version": registered[0]})  # the alias, not a tag, says who is champion
    return metrics


def prepared_with_val(params: Params) -> tuple[Prepared, Ontology]:
    """The prepared data (prepared now when missing; it must have a validation split) and the ontology."""
    prepared = ensure_prepared(params)
    require_val(prepared)
    run_meta.log_prepared_splits(prepared)
    return prepared, load_obo(params.data.obo)


def log_naive_baseline(
    y_train: TermMatrix, val_ids: list[str], term_aspect: Any, scorer: Scorer, min_score: float
) -> None:
    """The naive baseline's validation scores, for comparison in the run (`val_naive_*`)."""
    freq = term_frequencies(y_train.matrix, term_aspect)
    naive = repeat_row(np.where(freq >= min_score, freq, 0.0)[None, :], len(val_ids))
    runs.log_metrics(column_metrics(flat_metrics(scorer(TermMatrix(val_ids, y_train.terms, naive)), "val_naive_")))


def encoder_to_finetune(params: Params) -> tuple[Any, Any]:
    """(ESM-2 model, alphabet) when train.model is finetune, else (None, None)."""
    if params.train.model != "finetune":
        return None, None
    from cafa_mlflow.embed import load_esm

    return load_esm(params.embed.esm_model)


def fit_logged(
    predictor: NeuralPredictor,
    train: TrainSet,
    val: TrainSet,
    scorer: Scorer,
    epoch_callbacks: list,
    esm_model: Any,
    alphabet: Any,
) -> None:
    """Fit with early stopping on validation; every epoch's metrics go to the run (then `epoch_callbacks`)."""

    def val_metric(scores) -> dict[str, float]:
        return flat_metrics(scorer(TermMatrix(val.ids, train.labels.terms, scores)))

    def log_epoch(epoch: int, metrics: dict) -> None:
        runs.log_metrics(column_metrics(metrics), step=epoch)

    predictor.fit(
        train,
        val,
        val_metric=val_metric,
        callbacks=[log_epoch, *epoch_callbacks],
        esm_model=esm_model,
        alphabet=alphabet,
    )


def val_metrics(
    predictor: NeuralPredictor, scorer: Scorer, curves: Any, scores: TermMatrix, y_val: TermMatrix, term_aspect: Any
) -> dict[str, float]:
    """CAFA measures of the validation scores, and F1 at the predictor's own thresholds (`val_*`)."""
    metrics = flat_metrics(scorer.summary(curves), "val_")
    binary = TermMatrix(scores.proteins, predictor.terms, predictor.thresholds.apply(scores.matrix).astype(bool))
    metrics.update({f"val_{k}": v for k, v in f1_at_thresholds(y_val, binary, term_aspect).items()})
    return metrics


def refitter(params: Params, best_epoch: int, finetune: bool) -> Callable[[], NeuralPredictor]:
    """A fresh predictor for the folds and the whole-pool refit. They have no validation split of their own:
    they stop early on val_loss of an inner split of their training part (train.val_fraction), so `val` stays
    unseen by them, and train at most as many epochs as the fit found best (the only number they take from
    validation). finetune: the encoder as loaded, not as the fit left it."""
    refit_params = dataclasses.replace(
        params.train, monitor="val_loss", monitor_mode="min", max_epochs=max(1, best_epoch)
    )

    def refit() -> NeuralPredictor:
        if not finetune:
            return NeuralPredictor(refit_params)
        from cafa_mlflow.embed import load_esm

        return NeuralPredictor(refit_params, load_esm(params.embed.esm_model))

    return refit
