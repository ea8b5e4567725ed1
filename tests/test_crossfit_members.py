"""Cross-fitted members: out-of-fold predictions never come from a fit that saw the protein, the saved model
is the whole-pool refit, and the ensemble learns its weights from out-of-fold predictions only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from predictor_fixtures import UnsavedPredictor

from cafa_mlflow.config.schema import load_config
from cafa_mlflow.data.prepared import load_prepared
from cafa_mlflow.errors import ConfigError
from cafa_mlflow.go.labels import TermMatrix, load_term_matrix
from cafa_mlflow.go.ontology import load_obo
from cafa_mlflow.predictors.base import Predictor, ProteinSet, TrainSet
from cafa_mlflow.predictors.crossfit import cross_fit, oof_sample
from cafa_mlflow.workflows.ensemble import fitting_data
from pipelines import cli

REPO = Path(__file__).resolve().parents[1]


class Memorizer(UnsavedPredictor):
    """Scores 1.0 for a protein it was fitted on, 0.5 for any other: a leak shows as a 1.0."""

    kind = "memorizer"

    def fit(self, train: TrainSet) -> Memorizer:
        self.seen = set(train.ids)
        return self

    def predict(self, proteins: ProteinSet) -> TermMatrix:
        scores = np.array([[1.0 if p in self.seen else 0.5] for p in proteins.ids], dtype=np.float32)
        return TermMatrix(proteins.ids, ["GO:0000001"], scores)


def test_cross_fit_scores_every_protein_with_a_fit_that_never_saw_it():
    ids = [f"P{i}" for i in range(10)]
    train = TrainSet(ids, labels=TermMatrix(ids, ["GO:0000001"], np.ones((10, 1), np.float32)))
    folds = np.array([0, 1, 2] * 3 + [0])
    oof = cross_fit(Memorizer, train, folds)
    assert oof.proteins == ids
    assert oof.matrix.toarray().ravel().tolist() == [0.5] * 10  # a 1.0 would be a protein scored by its own fit


class Counter(Memorizer):
    """A Memorizer that records the proteins each fold's fit was trained on and asked about."""

    calls: list = []

    def fit(self, train: TrainSet) -> Counter:
        Counter.calls.append(("fit", len(train.ids)))
        return super().fit(train)

    def predict(self, proteins: ProteinSet) -> TermMatrix:
        Counter.calls.append(("predict", list(proteins.ids)))
        return super().predict(proteins)


def test_cross_fit_scores_only_the_sampled_proteins_with_fits_on_every_other_fold():
    ids = [f"P{i}" for i in range(10)]
    train = TrainSet(ids, labels=TermMatrix(ids, ["GO:0000001"], np.ones((10, 1), np.float32)))
    folds = np.array([0, 1, 2] * 3 + [0])
    Counter.calls = []
    oof = cross_fit(Counter, train, folds, scored=np.array([1, 4, 8, 9]))
    assert oof.proteins == ["P1", "P4", "P8", "P9"]  # train.ids order
    assert oof.matrix.toarray().ravel().tolist() == [0.5] * 4
    assert Counter.calls == [("fit", 6), ("predict", ["P9"]), ("fit", 7), ("predict", ["P1", "P4"]),
                             ("fit", 7), ("predict", ["P8"])]  # fmt: skip


class QuerySetRecorder(Memorizer):
    """A Memorizer that records the whole input it is told the next predict() calls belong to."""

    told: list = []

    def set_query_set(self, ids, sequences, accessions=None) -> None:
        QuerySetRecorder.told.append((list(ids), list(sequences)))


def test_a_sampled_fold_tells_its_predictor_the_whole_fold_as_the_query_set():
    ids = [f"P{i}" for i in range(6)]
    seqs = [f"M{'A' * i}" for i in range(6)]
    labels = TermMatrix(ids, ["GO:0000001"], np.ones((6, 1), np.float32))
    train = TrainSet(ids, labels=labels, sequences=seqs)
    folds = np.array([0, 1, 0, 1, 0, 1])
    QuerySetRecorder.told = []
    oof = cross_fit(QuerySetRecorder, train, folds, scored=np.array([0, 3]))
    assert oof.proteins == ["P0", "P3"]
    assert QuerySetRecorder.told == [
        (["P0", "P2", "P4"], ["M", "MAA", "MAAAA"]),
        (["P1", "P3", "P5"], ["MA", "MAAA", "MAAAAA"]),
    ]
    QuerySetRecorder.told = []
    cross_fit(QuerySetRecorder, train, folds)  # no sample: each fold's predict() call is the whole fold already
    assert QuerySetRecorder.told == []


def test_oof_sample_is_seeded_sorted_and_all_when_zero():
    assert oof_sample(5, 0, 0).tolist() == [0, 1, 2, 3, 4]
    assert oof_sample(5, 9, 0).tolist() == [0, 1, 2, 3, 4]
    picked = oof_sample(100, 10, 3)
    assert len(set(picked.tolist())) == 10 and picked.tolist() == sorted(picked.tolist())
    assert picked.tolist() == oof_sample(100, 10, 3).tolist() != oof_sample(100, 10, 4).tolist()


def member(overrides, kind: str, *flags: str) -> None:
    """`cafa member` as a user runs it (its own MLflow run)."""
    assert cli.main(["member", "--predictor", kind, "--params-file", str(overrides), *flags]) == 0


def test_member_writes_out_of_fold_predictions_and_saves_the_whole_pool_refit(world):
    root, overrides = world
    member(overrides, "knn", "--folds-k", "3", "--folds-full-fit", "true", "--knn-k", "3")
    prepared = load_prepared(root / "prepared")
    out = root / "predictions" / "knn"
    oof = load_term_matrix(out / "oof.npz")
    assert oof.proteins == prepared.ids("train")  # every train protein, in order
    assert oof.matrix.nnz > 0
    model = Predictor.load(out / "model")
    assert set(model.train_ids) == set(prepared.ids("pool"))  # test and new proteins: the refit on train + val
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"val_f_w_mean", "test_f_w_mean"} <= set(metrics)


def test_member_without_folds_or_refit_keeps_the_train_fit(world):
    root, overrides = world
    member(overrides, "knn", "--folds-k", "0", "--folds-full-fit", "false", "--knn-k", "3")
    out = root / "predictions" / "knn"
    assert not (out / "oof.npz").exists()
    assert set(Predictor.load(out / "model").train_ids) == set(load_prepared(root / "prepared").ids("train"))


def test_ensemble_fits_on_out_of_fold_predictions_of_train_proteins_only(world):
    root, overrides = world
    params = load_config(REPO / "params.yaml", params_file=overrides).with_overrides(
        {"folds.k": 3, "knn.k": 3, "ensemble.fit_on": "oof", "folds.oof_proteins": 0}
    )
    for kind in ("naive", "knn"):
        member(overrides, kind, "--folds-k", "3", "--knn-k", "3")
    prepared = load_prepared(root / "prepared")
    saved, ontology = {"val": {}}, load_obo(params.data.obo)
    fit_set, scorer, preds = fitting_data(params, prepared, ontology, ["naive", "knn"], saved)
    assert fit_set.ids == prepared.ids("train") and not set(fit_set.ids) & set(prepared.ids("val"))
    assert all(tm.proteins == fit_set.ids for tm in preds.values())
    no_folds = params.with_overrides({"folds.k": 0})
    with pytest.raises(ConfigError, match=r"ensemble.fit_on=oof needs .* folds.k >= 2"):
        fitting_data(no_folds, prepared, ontology, ["naive", "knn"], saved)
    assert 0 < scorer(preds["knn"])["BPO"]["f_w"] <= 1  # scored against the train proteins' own labels
