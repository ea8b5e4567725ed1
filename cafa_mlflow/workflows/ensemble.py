"""Fit the ensemble: per-aspect member weights on the validation split only, GO-consistent capped and
rounded val/test predictions, a report, and one registered pyfunc model (champion when it is better)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from cafa_mlflow import run_meta, tracking
from cafa_mlflow.ensemble import finalize
from cafa_mlflow.errors import InputError
from cafa_mlflow.evaluation.plots import aspect_scores, plot_members_vs_ensemble
from cafa_mlflow.evaluation.scorer import flat_metrics
from cafa_mlflow.go.ontology import load_obo
from cafa_mlflow.io.text import atomic_write, check_writable
from cafa_mlflow.labels import TermMatrix, load_term_matrix
from cafa_mlflow.metric_vocabulary import headline
from cafa_mlflow.predictors.base import Predictor, TrainSet
from cafa_mlflow.predictors.ensemble import EnsemblePredictor
from cafa_mlflow.workflows.common import (
    SPLITS,
    ensure_prepared,
    member_folder,
    require_val,
    split_scorer,
    write_member,
)

NAME = "ensemble"


def saved_predictions(params: Any, names: list[str], split: str) -> dict[str, TermMatrix]:
    out = {}
    for name in names:
        path = member_folder(params, name) / f"{split}.npz"
        if not path.is_file():
            raise InputError(
                f"{path}: member {name!r} has no {split} predictions; run `cafa member --predictor {name}` "
                "(neural: `cafa train`) first, or drop it from ensemble.members."
            )
        out[name] = load_term_matrix(path)
    return out


def fit_ensemble(params: Any, register: bool = True) -> dict[str, float]:
    """Fit weights, write predictions and metrics, log everything into the active MLflow run."""
    from cafa_mlflow.serving import log_go_model

    check_writable(member_folder(params, NAME), folder=True)
    check_writable(Path(params.outputs.metrics) / "ensemble_val.json")
    prepared = ensure_prepared(params)
    require_val(prepared)
    run_meta.log_prepared_splits(prepared, ("val", "test"))
    ontology = load_obo(params.data.obo)
    names = list(params.ensemble.members)
    saved = {
        split: saved_predictions(params, names, split)
        for split in SPLITS
        if split == "val" or prepared.test_fasta.exists()
    }
    members = {name: Predictor.load(member_folder(params, name) / "model") for name in names}
    ensemble = EnsemblePredictor.from_params(params, ontology, members)  # members on one encoder, or an error
    scorer = split_scorer(prepared, ontology, "val", params.ensemble.threshold_step)
    val = TrainSet(prepared.ids("val"), labels=prepared.split_labels("val"))
    ensemble.fit(val, scorer=scorer, member_predictions=saved["val"])
    member_results = {name: scorer(tm) for name, tm in saved["val"].items()}  # scored once: report and run
    member_metrics = {name: flat_metrics(result, "val_") for name, result in member_results.items()}
    predictions, metrics = {}, {}
    for split, preds in saved.items():
        predictions[split] = finalize(ensemble.combine(preds, prepared.ids(split)), ontology, params.submission)
        split_score = (
            scorer if split == "val" else split_scorer(prepared, ontology, split, params.evaluate.threshold_step)
        )
        if split_score is not None:
            metrics.update(flat_metrics(split_score(predictions[split]), f"{split}_"))
    out = write_member(member_folder(params, NAME), ensemble, predictions, metrics)
    report = {"members": member_metrics, "ensemble": metrics, "weights": ensemble.weights}
    report_file = Path(params.outputs.metrics) / "ensemble_val.json"
    with atomic_write(report_file) as handle:
        json.dump(report, handle, indent=1, sort_keys=True)

    tracking.log_params(
        {
            "members": ",".join(names),
            **{f"weight_{a}_{m}": w for a, per in ensemble.weights.items() for m, w in per.items()},
        }
    )
    for name, result in member_results.items():
        tracking.log_metrics(headline(flat_metrics(result, f"val_{name}_")))
    tracking.log_metrics(headline(metrics))
    bars = {name: aspect_scores(flat) for name, flat in member_metrics.items()}
    bars[NAME] = aspect_scores(metrics)
    with tempfile.TemporaryDirectory() as tmp:
        plot = plot_members_vs_ensemble(
            bars, str(Path(tmp) / "members_vs_ensemble.png"), title="validation: members vs ensemble"
        )
        tracking.log_artifacts([plot, report_file], "ensemble")
    plain = params.to_dict()
    info = log_go_model(
        out / "model", params.data.obo, params.submission.to_dict(), name=run_meta.logged_model_name("ensemble", plain)
    )
    if register:
        version, promoted = tracking.register_and_promote(
            info.model_uri,
            params.tracking.registered_model,
            metrics["val_f_w_mean"],
            prepared.split_id,
            kind="ensemble",
            members=names,
            encoder=ensemble.embed.label if ensemble.embed else "",
        )
        print(
            f"registered {params.tracking.registered_model} v{version}"
            f"{' as champion' if promoted else ' (champion unchanged)'}"
        )
    return metrics
