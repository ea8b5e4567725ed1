"""Fit the ensemble (ensemble.method: a per-aspect simplex blend or a learned stacker) on the members'
out-of-fold predictions of the train split (ensemble.fit_on: oof; or on validation), then GO-consistent,
capped and rounded val/test predictions, a report, and one registered pyfunc model. Validation is scored
by an ensemble that never saw it, so the `champion` alias moves on an unfitted score."""

from __future__ import annotations

import functools
import logging
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cafa_mlflow.errors import ConfigError, InputError
from cafa_mlflow.evaluation.plots import aspect_scores, plot_members_vs_ensemble
from cafa_mlflow.evaluation.scorer import Scorer, flat_metrics
from cafa_mlflow.go.labels import TermMatrix, load_term_matrix
from cafa_mlflow.go.ontology import load_obo
from cafa_mlflow.io.fasta import load_fasta
from cafa_mlflow.io.integrity import verify
from cafa_mlflow.io.text import check_writable, write_json
from cafa_mlflow.predictors import registry
from cafa_mlflow.predictors.base import Predictor, TrainSet
from cafa_mlflow.predictors.crossfit import oof_sample
from cafa_mlflow.predictors.hit_features import HitFeatures
from cafa_mlflow.tracking import run_meta, runs
from cafa_mlflow.tracking.metric_names import column_metrics
from cafa_mlflow.workflows.common import (
    FEATURES_SUFFIX,
    OOF,
    SPLITS,
    ensure_prepared,
    member_folder,
    require_val,
    split_scorer,
    write_member,
)
from cafa_mlflow.workflows.packaging import package_and_register
from cafa_mlflow.workflows.score_cache import record_saved_scores, saved_key

if TYPE_CHECKING:
    from cafa_mlflow.config.schema import Params
    from cafa_mlflow.data.prepared import Prepared
    from cafa_mlflow.go.ontology import Ontology

NAME = "ensemble"
log = logging.getLogger(__name__)


def require_rows(saved: dict[str, TermMatrix], ids: list[str]) -> Iterable[tuple[str, TermMatrix]]:
    """Each member's predictions, refused in one line when they lack some of `ids` (out-of-fold predictions made
    under another folds block)."""
    for name, tm in saved.items():
        if missing := len(set(ids) - set(tm.proteins)):
            raise InputError(
                f"{name}: its out-of-fold predictions lack {missing} of the {len(ids)} proteins folds.oof_proteins "
                f"samples; re-run that member's step with the same folds block."
            )
        yield name, tm


def saved_predictions(params: Params, names: list[str], split: str) -> dict[str, TermMatrix]:
    out = {}
    for name in names:
        path = member_folder(params, name) / f"{split}.npz"
        if not path.is_file():
            raise InputError(
                f"{path}: member {name!r} has no {split} predictions; run `cafa member --predictor {name}` "
                "(neural: `cafa train`) first"
                + (" with folds.k >= 2" if split == OOF else "")
                + ", or drop it from ensemble.members."
            )
        verify(path, f"run `cafa member --predictor {name}` (neural: `cafa train`) again to rewrite it")
        out[name] = load_term_matrix(path)
    return out


def saved_features(params: Params, names: list[str], split: str) -> dict[str, HitFeatures]:
    """The term features (<split>_features.npz) of the members that wrote some (search members), by name."""
    out = {}
    for name in names:
        path = member_folder(params, name) / f"{split}{FEATURES_SUFFIX}"
        if path.is_file():
            verify(path, f"run `cafa member --predictor {name}` again to rewrite it")
            out[name] = HitFeatures.load(path)
    return out


def ensemble_members(params: Params) -> list[str]:
    """ensemble.members, without those the chain skipped (an optional member that cannot run here: one notice)."""
    names = []
    for name in params.ensemble.members:
        if why := registry.unavailable(name, params):
            log.warning("ensemble without the %s member (%s)", name, why)
        else:
            names.append(name)
    return names


def fitting_data(
    params: Params, prepared: Prepared, ontology: Ontology, names: list[str], saved: dict[str, dict[str, TermMatrix]]
) -> tuple[TrainSet, Any, dict[str, TermMatrix]]:
    """What the weights are fitted on: the members' out-of-fold predictions of (a seeded sample of)
    the train split (ensemble.fit_on: oof), so validation stays unseen, or the validation split (val)."""
    block = params.ensemble
    if block.fit_on == "val":
        log.warning("ensemble.fit_on=val: the weights are fitted on validation, so its score is optimistic")
        val = TrainSet(prepared.ids("val"), labels=prepared.split_labels("val"))
        return val, split_scorer(prepared, ontology, "val", block.threshold_step), saved["val"]
    if params.folds.k < 2:
        raise ConfigError(
            f"ensemble.fit_on=oof needs the members' out-of-fold predictions: set folds.k >= 2 (now {params.folds.k}) "
            "and re-run the members, or set ensemble.fit_on: val."
        )
    train_ids = prepared.ids("train")
    ids = [train_ids[i] for i in oof_sample(len(train_ids), params.folds.oof_proteins, params.folds.seed)]
    truth = prepared.split_labels("train", all_terms=True).reindex(proteins=ids)
    oof = {name: tm.reindex(proteins=ids) for name, tm in require_rows(saved_predictions(params, names, OOF), ids)}
    scorer = functools.cache(lambda: Scorer(ontology, truth, prepared.ia, block.threshold_step))  # built on first use
    return TrainSet(ids, labels=truth), lambda prediction: scorer()(prediction), oof


def fit_ensemble(params: Params, register: bool = True, out: Path | None = None) -> dict[str, float]:
    """Fit, write predictions and metrics (into `out`, default <outputs.predictions>/ensemble), log
    everything into the active MLflow run."""
    out = member_folder(params, NAME) if out is None else Path(out)
    params.require_oof()
    check_writable(out, folder=True, replace=True)
    check_writable(Path(params.outputs.metrics) / "ensemble_val.json")
    prepared = ensure_prepared(params)
    require_val(prepared)
    run_meta.log_prepared_splits(prepared, ("val", "test"))
    ontology = load_obo(params.data.obo)
    names = ensemble_members(params)
    saved = {
        split: saved_predictions(params, names, split)
        for split in SPLITS
        if split == "val" or prepared.test_fasta.exists()
    }
    features = {split: saved_features(params, names, split) for split in (*saved, OOF)} if reads(params) else {}
    ensemble, fit_set = fitted_ensemble(params, prepared, ontology, names, saved, features)
    scorer = split_scorer(prepared, ontology, "val", params.ensemble.threshold_step)
    member_results = {name: scorer(tm) for name, tm in saved["val"].items()}  # scored once: report and run
    predictions, metrics = finalized_predictions(params, ensemble, prepared, ontology, saved, scorer, features)
    write_member(
        out,
        ensemble,
        predictions,
        metrics,
        extra=saved_scores_record(params, ensemble, prepared, predictions, saved.get("test", {})),
    )
    tables = ensemble.report_tables(
        saved["val"], prepared.split_labels("val", all_terms=True), member_features=features.get("val")
    )
    log_ensemble_run(params, ensemble, names, len(fit_set.ids), member_results, metrics, tables)
    if not register:  # a tune trial: scored, not packaged
        return metrics
    version, promoted = package_and_register(
        params,
        out,
        "ensemble",
        (metrics["val_f_w_mean"], prepared.split_id),
        register=True,
        kind=ensemble.kind,
        encoder=ensemble.embed.label if ensemble.embed else "",
        members=names,
        predictor=ensemble,
    )
    print(
        f"registered {params.tracking.registered_model} v{version}{' as champion' if promoted else ' (champion unchanged)'}"
    )
    return metrics


def saved_scores_record(
    params: Params,
    ensemble: Predictor,
    prepared: Prepared,
    predictions: dict[str, TermMatrix],
    member_test: dict[str, TermMatrix],
) -> Callable[[Path], None] | None:
    """What write_member adds beside the finalized test scores: the key they were computed under (the test
    proteins, the saved model's content, the OBO, the submission block and encoder), so that `cafa predict` of
    the same proteins with this model writes them instead of computing them again (workflows/score_cache.py).
    None (no record: predict computes) when there are no test scores or a member's saved test predictions are
    not of exactly the prepared test proteins (a member run on another prepared set)."""
    if "test" not in predictions:
        return None
    records = load_fasta(prepared.test_fasta)
    ids = [r.id for r in records]
    if any(tm.proteins != ids for tm in member_test.values()):
        log.warning("the members' test predictions are not of %s: predict will compute", prepared.test_fasta)
        return None

    def record(folder: Path) -> None:
        key = saved_key(folder / "model", params.data.obo, params.submission, ensemble.embed)
        record_saved_scores(folder, records, key)

    return record


def reads(params: Params) -> bool:
    """Whether ensemble.method's predictor learns from the members' term features (their hit statistics)."""
    return registry.predictor_class(registry.ENSEMBLE_METHODS[params.ensemble.method]).reads_features


def fitted_ensemble(
    params: Params,
    prepared: Prepared,
    ontology: Ontology,
    names: list[str],
    saved: dict[str, dict[str, TermMatrix]],
    features: dict[str, dict[str, HitFeatures]] | None = None,
) -> tuple[Predictor, TrainSet]:
    """The blend or a learned model (ensemble.method) over the saved members, fitted; and what it was fitted on.
    `features`: the members' term features per split, for a method that reads them."""
    members = {name: Predictor.load(member_folder(params, name) / "model") for name in names}
    kind = registry.ENSEMBLE_METHODS[params.ensemble.method]  # blend or learned stacker: both are Predictors
    ensemble = registry.build(kind, params, ontology, members=members, ia=prepared.ia)  # one encoder
    fit_set, fit_scorer, fit_predictions = fitting_data(params, prepared, ontology, names, saved)
    extra = {}
    if ensemble.reads_features:
        extra["member_features"] = (features or {}).get("val" if params.ensemble.fit_on == "val" else OOF, {})
    ensemble.fit(fit_set, scorer=fit_scorer, member_predictions=fit_predictions, **extra)
    return ensemble, fit_set


def finalized_predictions(
    params: Params,
    ensemble: Predictor,
    prepared: Prepared,
    ontology: Ontology,
    saved: dict[str, dict[str, TermMatrix]],
    val_scorer: Any,
    features: dict[str, dict[str, HitFeatures]] | None = None,
) -> tuple[dict[str, TermMatrix], dict[str, float]]:
    """The ensemble's GO-consistent, capped and rounded predictions of each split, and their scores."""
    predictions, metrics = {}, {}
    for split, preds in saved.items():
        predictions[split] = ensemble.finalized(
            preds, prepared.ids(split), ontology, params.submission, (features or {}).get(split)
        )
        split_score = (
            val_scorer if split == "val" else split_scorer(prepared, ontology, split, params.evaluate.threshold_step)
        )
        if split_score is not None:
            metrics.update(flat_metrics(split_score(predictions[split]), f"{split}_"))
    return predictions, metrics


def log_ensemble_run(
    params: Params,
    ensemble: Predictor,
    names: list[str],
    fit_proteins: int,
    member_results: dict[str, Any],
    metrics: dict[str, float],
    tables: dict[str, Any] | None = None,
) -> None:
    """The report file (members, ensemble, weights), then params, metrics, the members-vs-ensemble plot and the
    ensemble's tables (blend weights, learned importances) as <outputs.metrics>/ensemble_<name>.tsv artifacts."""
    member_metrics = {name: flat_metrics(result, "val_") for name, result in member_results.items()}
    report = {"members": member_metrics, "ensemble": metrics, "method": params.ensemble.method, **ensemble.summary()}
    report_file = Path(params.outputs.metrics) / "ensemble_val.json"
    write_json(report_file, report, sort_keys=True)
    runs.log_params(
        {
            **params.ensemble.to_dict(),
            "members": ",".join(names),
            "fit_proteins_used": fit_proteins,
            **ensemble.summary(),
        }
    )
    for name, result in member_results.items():
        runs.log_metrics(column_metrics(flat_metrics(result, f"val_{name}_")))
    runs.log_metrics(column_metrics(metrics))
    bars = {name: aspect_scores(flat) for name, flat in member_metrics.items()}
    bars[NAME] = aspect_scores(metrics)
    with tempfile.TemporaryDirectory() as tmp:
        plot = plot_members_vs_ensemble(
            bars, str(Path(tmp) / "members_vs_ensemble.png"), title="validation: members vs ensemble"
        )
        written = []
        for name, table in (tables or {}).items():
            written.append(Path(params.outputs.metrics) / f"ensemble_{name}.tsv")
            table.to_csv(written[-1], sep="\t", index=False, float_format="%.4g")
        runs.log_artifacts([plot, report_file, *written], "ensemble")
