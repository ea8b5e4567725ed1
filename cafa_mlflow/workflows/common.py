"""Shared by the step workflows: prepared data on demand, the inputs a predictor needs, member outputs."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cafa_mlflow.data.prepared import Prepared, load_prepared, prepare_dataset
from cafa_mlflow.errors import InputError
from cafa_mlflow.evaluation.scorer import flat_metrics
from cafa_mlflow.go.labels import TermMatrix, save_term_matrix
from cafa_mlflow.io.text import atomic_dir
from cafa_mlflow.predictors.base import CHUNKS, EMBEDDING, SEQUENCE, Predictor, ProteinSet, TrainSet
from cafa_mlflow.predictors.hit_features import HitFeatures, stack_features

if TYPE_CHECKING:
    from cafa_mlflow.config.schema import Params

    pass

SPLITS = ("val", "test")  # what every member predicts (val from the fit on `train`)
OOF = "oof"  # out-of-fold predictions of the train split (folds.k >= 2)
FEATURES_SUFFIX = "_features.npz"  # <split>_features.npz: a search member's term features (Predictor.term_features)
log = logging.getLogger(__name__)


def ensure_prepared(params: Params) -> Prepared:
    """The prepared dataset, prepared now when its folder is missing (so any step works from a fresh clone)."""
    root = Path(params.prepare.out)
    if not (root / "summary.json").is_file():
        log.info("no prepared data in %s: preparing it first", root)
        prepare_dataset(params.data.to_dict(), params.prepare.to_dict(), root)
    return load_prepared(root)


def bind_encoder_and_load(
    predictor: Predictor,
    params: Params,
    prepared: Prepared,
    split: str,
    ids: list[str] | None = None,
    labels: TermMatrix | None = None,
) -> ProteinSet:
    """The proteins of `split` (or `ids` of it) with exactly the inputs `predictor` needs; a TrainSet
    when `labels` are given."""
    from cafa_mlflow.embed.settings import EmbedSettings

    ids = prepared.ids(split) if ids is None else ids
    needs, inputs = predictor.inputs(), {}
    if SEQUENCE in needs:
        inputs.update(fasta=prepared.fasta(split), sequences=prepared.sequences(split, ids))
    if needs & {EMBEDDING, CHUNKS}:
        from cafa_mlflow.embed.cache import load_embeddings
        from cafa_mlflow.embed.resolve import cache_for, pooled_rows
        from cafa_mlflow.predictors.neural.features import embedding_inputs

        settings = EmbedSettings.from_block(params.embed)
        settings.require_same(predictor.embed, f"the {predictor.kind} predictor")
        predictor.embed = settings
        cache = cache_for(params, prepared.role(split))
        emb = load_embeddings(cache)
        if CHUNKS in needs:
            inputs["chunks"] = embedding_inputs(emb, ids, "chunk_attention", str(cache))
        else:
            inputs["embeddings"] = pooled_rows(emb, ids, str(cache))
    if labels is None:
        return ProteinSet(ids, **inputs)
    return TrainSet(ids, labels=labels, term_aspect=prepared.term_aspects(labels.terms), **inputs)


def training_set(predictor: Predictor, params: Params, prepared: Prepared, split: str) -> TrainSet:
    """The proteins of `split` (train, val or pool) with their labels over the terms `predictor` learns."""
    labels = prepared.split_labels(split, all_terms=predictor.label_terms == "all")
    return bind_encoder_and_load(predictor, params, prepared, split, labels=labels)


def cross_fitted(
    make: Callable[[], Predictor],
    params: Params,
    prepared: Prepared,
    like: Predictor,
    features: list[HitFeatures] | None = None,
) -> TermMatrix | None:
    """Out-of-fold predictions of the sampled `train` proteins (folds.oof_proteins; folds.k folds of whole prepare clusters: a protein is
    scored by a fresh `make()` fitted on the other folds); None when folds.k < 2. `like`: a predictor of the
    same kind, which says what inputs and labels the folds need."""
    from cafa_mlflow.predictors.crossfit import cross_fit, oof_sample

    if params.folds.k < 2:
        return None
    folds = prepared.folds(params.folds.k, params.folds.seed)
    if len(set(folds.tolist())) < 2:  # one cluster holds every train protein: nothing to hold out
        log.warning("the train split is one cluster: no out-of-fold predictions (lower prepare.split_min_identity)")
        return None
    scored = oof_sample(len(folds), params.folds.oof_proteins, params.folds.seed)
    return cross_fit(make, training_set(like, params, prepared, "train"), folds, features, scored)


def final_fit(make: Callable[[], Predictor], params: Params, prepared: Prepared, fitted: Predictor) -> Predictor:
    """The predictor for test and new proteins: a fresh `make()` fitted on the whole pool (train + val) when
    folds.full_fit, else `fitted` (the fit on train that scored validation)."""
    if not params.folds.full_fit or not prepared.ids("val"):
        return fitted
    predictor = make()
    return predictor.fit(training_set(predictor, params, prepared, "pool"))


def finish_member(
    make: Callable[[], Predictor],
    fitted: Predictor,
    params: Params,
    prepared: Prepared,
    ontology: Any,
    predictions: dict,
    scored: tuple[str, ...] = SPLITS,
    threshold_step: float | None = None,
    features: dict[str, HitFeatures | None] | None = None,
) -> tuple[Predictor, dict[str, TermMatrix], dict[str, float]]:
    """The member lifecycle after its fit on `train` (which predicted `val` into `predictions`): out-of-fold
    predictions of the train split, the final fit (whole pool when folds.full_fit), its `test` predictions, and
    the scores of the `scored` splits (never oof; threshold_step default: evaluate's). Returns (final predictor,
    predictions, metrics). `features`, when given, receives each split's term_features() (oof: the folds' joined)."""
    step = params.evaluate.threshold_step if threshold_step is None else threshold_step
    fold_features: list[HitFeatures] = []
    oof = cross_fitted(make, params, prepared, fitted, fold_features)
    if oof is not None:
        predictions[OOF] = oof
        if features is not None and fold_features:
            features[OOF] = stack_features(fold_features, oof.proteins)
    final = final_fit(make, params, prepared, fitted)
    final.prepare_loading()  # what the ensemble step's loading of the saved member would build, built once
    if prepared.test_fasta.exists():
        predictions["test"] = final.predict(bind_encoder_and_load(final, params, prepared, "test"))
        if features is not None:
            features["test"] = final.term_features()
    metrics: dict[str, float] = {}
    for split in (s for s in scored if s in predictions):
        scorer = split_scorer(prepared, ontology, split, step)
        if scorer is not None:
            metrics.update(flat_metrics(scorer(predictions[split]), f"{split}_"))
    return final, predictions, metrics


def write_member(
    out: Path,
    predictor: Predictor,
    predictions: dict[str, TermMatrix],
    metrics: dict[str, float],
    extra: Callable[[Path], None] | None = None,
    features: dict[str, HitFeatures | None] | None = None,
) -> Path:
    """A member's predictions, model and metrics (and what `extra(folder)` writes; each split's term features as
    <split>_features.npz), all or nothing: written into a new folder that replaces `out` only at the end (a killed
    step leaves the previous outputs)."""
    with atomic_dir(out) as folder:
        for split, tm in predictions.items():
            save_term_matrix(folder / f"{split}.npz", tm)
        for split, found in (features or {}).items():
            if found is not None:
                found.save(folder / f"{split}{FEATURES_SUFFIX}")
        predictor.save(folder / "model")
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True))
        if extra is not None:
            extra(folder)
    return out


def member_folder(params: Params, name: str) -> Path:
    return Path(params.outputs.predictions) / name


def require_val(prepared: Prepared) -> None:
    if not prepared.ids("val"):
        raise InputError(
            f"{prepared.root}: the prepared data has no `val` split; set prepare.val_fraction > 0 and re-run "
            "`cafa prepare`."
        )


def split_scorer(prepared: Prepared, ontology: Any, split: str, threshold_step: float) -> Any:
    """A Scorer of the split's ground truth (None when the split has none, e.g. Kaggle's test set)."""
    from cafa_mlflow.evaluation.scorer import Scorer, read_truth

    truth_file = prepared.truth_file(split)
    if truth_file is None:
        return None
    return Scorer(ontology, read_truth(truth_file, ontology, prepared.ids(split)), prepared.ia, threshold_step)
