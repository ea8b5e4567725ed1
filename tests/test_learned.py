"""LearnedPredictor (ensemble.method: learned): trees over the members' scores and a search member's hit statistics
learn from the hit features when the scores carry no signal, round-trip through save/load, and predict() reads the
members' own term_features()."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from predictor_fixtures import TERMS, tiny_ontology
from test_stacked import SETTINGS, Block

from cafa_mlflow.errors import InputError
from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.predictors.base import Predictor, ProteinSet, TrainSet
from cafa_mlflow.predictors.combine.learned import LearnedPredictor
from cafa_mlflow.predictors.hit_features import PROTEIN_FEATURES, TERM_FEATURES, HitFeatures
from cafa_mlflow.predictors.naive import NaivePredictor

BP2 = TERMS[2]
LEARNED = {**SETTINGS, "importance_pairs": 1000, "importance_repeats": 2}


def world(n: int = 200, seed: int = 0):
    """A protein carries BP2 exactly when the best identity of the hits carrying it is high; both members' scores
    are noise."""
    rng = np.random.default_rng(seed)
    ids = [f"P{i}" for i in range(n)]
    carries = rng.random(n) < 0.4
    ident = np.where(carries, rng.uniform(60, 100, n), rng.uniform(20, 50, n)).astype(np.float32)
    truth = np.zeros((n, len(TERMS)), np.float32)
    truth[:, [0, 3, 5]] = 1.0
    truth[carries, 1] = truth[carries, 2] = 1.0
    noise = sp.csr_matrix(rng.uniform(0.1, 1.0, (n, 1)).astype(np.float32))
    members = {"search": TermMatrix(ids, [BP2], noise), "other": TermMatrix(ids, [BP2], noise.copy())}
    term = {k: sp.csr_matrix(np.ones((n, 1), np.float32)) for k in TERM_FEATURES}
    term["best_ident"] = sp.csr_matrix(ident[:, None])
    protein = {k: np.ones(n, np.float32) for k in PROTEIN_FEATURES}
    return (
        ids,
        TermMatrix(ids, TERMS, sp.csr_matrix(truth)),
        members,
        {"search": HitFeatures(ids, [BP2], term, protein)},
        carries,
    )


def fitted_learned(tmp_path) -> tuple[LearnedPredictor, object]:
    ontology = tiny_ontology(tmp_path)
    ids, truth, members, features, _ = world()
    fitted = {"search": NaivePredictor(ontology), "other": NaivePredictor(ontology)}  # saved as members only
    for m in fitted.values():
        m.fit(TrainSet.from_labels(truth))
    learned = LearnedPredictor(fitted, ontology, Block(**LEARNED), {t: 1.0 for t in TERMS})
    learned.fit(TrainSet(ids, labels=truth), member_predictions=members, member_features=features)
    return learned, ontology


def bp2(tm: TermMatrix) -> np.ndarray:
    return tm.reindex(terms=[BP2]).matrix.toarray().ravel()


def test_learns_from_hit_features_and_round_trips(tmp_path):
    learned, _ = fitted_learned(tmp_path)
    assert learned.feature_members == ["search"]
    assert learned.fit_report["recall"] == pytest.approx(1.0)  # every BP2 truth pair is a candidate (score >= floor)
    ids, truth, members, features, carries = world(100, seed=1)
    scores = bp2(learned.combine(members, ids, features))
    assert scores[carries].min() > scores[~carries].max()  # decided by the hit identity, not the noisy scores
    learned.save(tmp_path / "learned")
    loaded = Predictor.load(tmp_path / "learned")
    assert isinstance(loaded, LearnedPredictor) and loaded.feature_members == ["search"]
    np.testing.assert_array_equal(bp2(loaded.combine(members, ids, features)), scores)
    with pytest.raises(InputError, match="search"):
        loaded.combine(members, ids, {})  # features the model was fitted with are required
    table = learned.report_tables(members, truth, member_features=features)["importances"]
    assert table["feature"].iloc[0] == "search_best_ident"


def test_predict_reads_the_members_term_features(tmp_path, monkeypatch):
    learned, _ = fitted_learned(tmp_path)
    ids, _, _, features, carries = world(50, seed=2)
    monkeypatch.setattr(NaivePredictor, "term_features", lambda self: features["search"].reindex(ids))
    scores = bp2(learned.predict(ProteinSet(ids)))
    assert scores[carries].min() > scores[~carries].max()
