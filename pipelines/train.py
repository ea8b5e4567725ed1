"""`train`: a neural GO-term classifier fitted on the prepared `train` split; the `val` split drives early
stopping, the per-epoch CAFA metric and the thresholds. Logs params, per-epoch and final metrics, plots,
the vocabulary and thresholds, saves val/test predictions and the model, and registers a pyfunc model."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from cafa_mlflow import tracking
from cafa_mlflow.dataset import Prepared, load_prepared
from cafa_mlflow.errors import InputError
from cafa_mlflow.go.ontology import load_obo
from cafa_mlflow.io.text import atomic_dir
from cafa_mlflow.labels import TermMatrix, save_term_matrix
from cafa_mlflow.predictors.naive import repeat_row, term_frequencies
from cafa_mlflow.predictors.neural import NeuralPredictor, TrainParams
from cafa_mlflow.predictors.neural.features import embedding_inputs, sequences_for
from cafa_mlflow.predictors.neural.plots import loss_figure, pr_figure
from pipelines.common import ensure_prepared, parse_params, run_main

# Flags: first section wins a shared name, so `--seed`/`--val-fraction`/`--top-k`/`--out` are prepare's
# (as in every run's standard params) and the train block's are `--train-seed`, ... (logged under those names).
SECTIONS = ("prepare", "embed", "train")
PIPELINE_KEYS = ("out",)  # train-block keys read here, not by the predictor
SHARED_NAMES = ("seed", "val_fraction", "top_k", "out")


def predictor_params(block: dict) -> TrainParams:
    return TrainParams.from_dict({k: v for k, v in block.items() if k not in PIPELINE_KEYS})


def run_params(params: dict) -> dict[str, Any]:
    """The train block under its flag names, plus `epochs` (= max_epochs); standard params come from start_run."""
    block = params["train"]
    return {**{(f"train_{k}" if k in SHARED_NAMES else k): v for k, v in block.items()}, "epochs": block["max_epochs"]}


def load_inputs(params: dict, prepared: Prepared, model: str) -> dict[str, Any]:
    """{split: model inputs} for train, val and (if prepared) test, the test ids, and ESM for `finetune`."""
    ids = {"train": prepared.ids("train"), "val": prepared.ids("val")}
    if not ids["val"]:
        raise InputError(
            f"{prepared.root}: the prepared data has no `val` split; set prepare.val_fraction > 0 "
            "and re-run `cafa prepare`"
        )
    has_test = prepared.test_fasta.exists()
    out: dict[str, Any] = {"esm_model": None, "alphabet": None}
    if model == "finetune":
        from cafa_mlflow.embed import load_esm
        from cafa_mlflow.io.fasta import load_fasta

        out["esm_model"], out["alphabet"] = load_esm(params["embed"]["esm_model"])
        pool = load_fasta(prepared.train_fasta)
        out.update({s: sequences_for(pool, ids[s], str(prepared.train_fasta)) for s in ("train", "val")})
        if has_test:
            test = load_fasta(prepared.test_fasta)
            ids["test"] = [r.id for r in test]
            out["test"] = [r.sequence for r in test]
    else:
        from cafa_mlflow.embed import load_embeddings
        from pipelines.embed import cache_for

        cache = cache_for(params, "train")
        pool = load_embeddings(cache)
        out.update({s: embedding_inputs(pool, ids[s], model, str(cache)) for s in ("train", "val")})
        if has_test:
            test_cache = cache_for(params, "test")
            test = load_embeddings(test_cache)
            ids["test"] = list(test.ids)
            out["test"] = embedding_inputs(test, ids["test"], model, str(test_cache))
    out["ids"] = ids
    return out


def input_example(data: dict[str, Any], n: int = 2) -> pd.DataFrame:
    """A few validation proteins in the pyfunc model's input format (sequence or pooled embedding)."""
    ids = data["ids"]["val"][:n]
    idx = np.arange(len(ids))
    if data["esm_model"] is not None:
        return pd.DataFrame({"protein": ids, "sequence": data["val"][:n]})
    batch = data["val"].batch(idx)
    vectors = batch[0].sum(1) / batch[1].sum(1, keepdim=True) if isinstance(batch, tuple) else batch
    return pd.DataFrame({"protein": ids, "embedding": list(vectors.numpy().astype(np.float32))})


def log_plots_and_tables(predictor: NeuralPredictor, curves: dict, prepared: Prepared) -> None:
    """PR curves per aspect, loss curve, thresholds table and term vocabulary as run artifacts."""
    for aspect, (unweighted, weighted) in curves.items():
        tracking.log_figure(pr_figure(aspect, unweighted, weighted), f"plots/pr_{aspect}.png")
    tracking.log_figure(loss_figure(predictor.result.history, predictor.result.best_epoch), "plots/loss.png")
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "thresholds.tsv"
        predictor.thresholds.to_frame(predictor.terms, predictor.term_aspect).to_csv(table, sep="\t", index=False)
        tracking.log_artifacts([table], "thresholds")
    tracking.log_artifacts([prepared.root / "terms.tsv"], "vocabulary")


def train(params: dict, epoch_callbacks: Sequence = (), register: bool = True) -> dict[str, float]:
    """Fit, evaluate, save and log inside the caller's active MLflow run; returns the final flat metrics."""
    from cafa_mlflow.evaluation.scorer import Scorer, f1_at_thresholds, flat_metrics, read_truth
    from cafa_mlflow.serving import log_go_model

    tp = predictor_params(params["train"])
    tracking.log_params(run_params(params))
    ensure_prepared(params)
    prepared = load_prepared(params["prepare"]["out"])
    ontology = load_obo(params["data"]["obo"])
    data = load_inputs(params, prepared, tp.model)
    ids, terms, aspect = data["ids"], prepared.labels.terms, prepared.term_aspect
    y_train, y_val = prepared.split_labels("train"), prepared.split_labels("val")
    val_file, test_file = prepared.truth_file("val"), prepared.truth_file("test")
    scorer = Scorer(
        ontology, read_truth(val_file, ontology, ids["val"]) if val_file else y_val, prepared.ia, tp.threshold_step
    )

    freq = term_frequencies(y_train.matrix, aspect)  # the naive baseline, for comparison in the run
    naive = repeat_row(np.where(freq >= tp.min_score, freq, 0.0)[None, :], len(ids["val"]))
    tracking.log_metrics(flat_metrics(scorer(TermMatrix(ids["val"], terms, naive)), "val_naive_"))

    def val_metric(scores) -> dict[str, float]:
        return flat_metrics(scorer(TermMatrix(ids["val"], terms, scores)))

    def log_epoch(epoch: int, metrics: dict) -> None:
        tracking.log_metrics(metrics, step=epoch)

    predictor = NeuralPredictor(tp)
    result = predictor.fit(
        data["train"],
        y_train.matrix,
        aspect,
        val=(data["val"], y_val.matrix),
        terms=terms,
        val_metric=val_metric,
        callbacks=[log_epoch, *epoch_callbacks],
        esm_model=data["esm_model"],
        alphabet=data["alphabet"],
    )
    out = Path(params["train"]["out"])
    val_scores = TermMatrix(ids["val"], terms, predictor.predict(data["val"]))
    val_curves = scorer.curves(val_scores)  # scored once: metrics here, PR plots below
    metrics = flat_metrics(scorer.summary(val_curves), "val_")
    binary = TermMatrix(ids["val"], terms, predictor.thresholds.apply(val_scores.matrix).astype(bool))
    metrics.update({f"val_{k}": v for k, v in f1_at_thresholds(y_val, binary, aspect).items()})
    save_term_matrix(out / "val.npz", val_scores)
    if "test" in data:
        test_scores = TermMatrix(ids["test"], terms, predictor.predict(data["test"]))
        save_term_matrix(out / "test.npz", test_scores)
        if test_file:
            test_truth = read_truth(test_file, ontology, ids["test"])
            metrics.update(
                flat_metrics(Scorer(ontology, test_truth, prepared.ia, tp.threshold_step)(test_scores), "test_")
            )
    metrics.update({"best_epoch": result.best_epoch, "epochs_run": len(result.history)})
    # one step past the last epoch: these (best weights restored) are the run's latest values
    tracking.log_metrics(metrics, step=len(result.history) + 1)
    with atomic_dir(out / "model") as folder:  # a failed save leaves the old model
        predictor.save(folder)
    log_plots_and_tables(predictor, val_curves, prepared)
    info = log_go_model(
        members={"neural": ("neural", out / "model")},
        weights=None,
        embed=params["embed"],
        obo=params["data"]["obo"],
        input_example=input_example(data),
    )
    if register:
        version, promoted = tracking.register_and_promote(
            info.model_uri, params["tracking"]["registered_model"], metrics["val_f_w_mean"], prepared.split_id
        )
        mlflow.set_tags({"registered_version": version, "champion": str(promoted).lower()})
    return metrics


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    params, _ = parse_params(argv, "cafa train", __doc__, SECTIONS)
    with tracking.start_run(params, "train"):
        metrics = train(params)
    shown = {k: round(v, 4) for k, v in metrics.items() if k.startswith(("val_f_w", "test_f_w"))}
    print(f"train: {shown}; predictions in {params['train']['out']}")
    return metrics


if __name__ == "__main__":
    sys.exit(run_main(main))
