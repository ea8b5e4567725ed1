"""StackedPredictor: a learned stacker over members' scores is a Predictor like the blend (fit on
out-of-fold scores, save/load round trip, candidates from any member, features without the training frequency,
GO-consistent once finalized)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import scipy.sparse as sp
from predictor_fixtures import TERMS, tiny_ontology

from cafa_mlflow.go.finalize import finalize
from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.predictors.base import Predictor, ProteinSet, TrainSet
from cafa_mlflow.predictors.combine.features import term_info
from cafa_mlflow.predictors.combine.hit_pairs import pair_features
from cafa_mlflow.predictors.combine.stacked import StackedPredictor
from cafa_mlflow.predictors.naive import NaivePredictor

BP, BP1, BP2, CC, CC3, MF, MF4, MF5 = TERMS
SETTINGS = dict(
    member_floor=0.05,
    naive_floor=0.9,
    max_iter=20,
    learning_rate=0.3,
    max_leaf_nodes=7,
    min_samples_leaf=2,
    l2_regularization=0.0,
    neg_fraction=1.0,
    max_rows=100000,
    ia_weight_floor=None,
    seed=0,
)


class Block(SimpleNamespace):
    def to_dict(self) -> dict:
        return dict(vars(self))


def world(n: int = 200, seed: int = 0):
    """Proteins carry BP2 (and its ancestors) exactly when the `signal` member scores them high."""
    rng = np.random.default_rng(seed)
    ids = [f"P{i}" for i in range(n)]
    carries = rng.random(n) < 0.4
    signal = np.where(carries, rng.uniform(0.6, 1.0, n), rng.uniform(0.0, 0.4, n)).astype(np.float32)
    noise = rng.uniform(0.0, 1.0, n).astype(np.float32)
    truth = np.zeros((n, len(TERMS)), np.float32)
    truth[:, [0, 3, 5]] = 1.0  # roots
    truth[carries, 1] = truth[carries, 2] = 1.0
    members = {
        "signal": TermMatrix(ids, [BP2], sp.csr_matrix(signal[:, None])),
        "noise": TermMatrix(ids, [BP2, MF5], sp.csr_matrix(np.column_stack([noise, noise]))),
    }
    return ids, TermMatrix(ids, TERMS, sp.csr_matrix(truth)), members, carries


def test_stacker_learns_which_member_to_trust_and_round_trips(tmp_path):
    ontology = tiny_ontology(tmp_path)
    ids, truth, members, carries = world()
    fitted = {"signal": NaivePredictor(ontology), "noise": NaivePredictor(ontology)}  # saved as members only
    for m in fitted.values():
        m.fit(TrainSet.from_labels(truth))
    stacked = StackedPredictor(fitted, ontology, Block(**SETTINGS), {t: 1.0 for t in TERMS})
    stacked.fit(TrainSet(ids, labels=truth), member_predictions=members)
    test_ids, _, test_members, test_carries = world(100, seed=1)
    scores = stacked.combine(test_members, test_ids).reindex(terms=[BP2]).matrix.toarray().ravel()
    assert scores[test_carries].min() > scores[~test_carries].max()  # the signal member decides, not the noise
    assert stacked.summary()["stacker.max_iter"] == 20
    stacked.save(tmp_path / "stacked")
    loaded = Predictor.load(tmp_path / "stacked")
    assert isinstance(loaded, StackedPredictor)
    again = loaded.combine(test_members, test_ids).reindex(terms=[BP2]).matrix.toarray().ravel()
    np.testing.assert_array_equal(again, scores)
    assert set(loaded.members) == {"signal", "noise"}
    # predict runs the members themselves (naive members: the same prior for every protein)
    assert loaded.predict(ProteinSet(["X", "Y"])).proteins == ["X", "Y"]


def test_candidates_come_from_any_member_and_the_finalized_output_is_go_consistent(tmp_path):
    ontology = tiny_ontology(tmp_path)
    ids, truth, members, _ = world()
    naive = NaivePredictor(ontology).fit(TrainSet.from_labels(truth))
    stacked = StackedPredictor({"signal": naive, "noise": naive}, ontology, Block(**SETTINGS), {})
    stacked.fit(TrainSet(ids, labels=truth), member_predictions=members)
    pairs = pair_features(
        {n: tm.reindex(ids, stacked.terms).matrix for n, tm in members.items()},
        {},  # the stacker: no hit features
        stacked.freq,
        term_info(stacked.terms, ontology, {}),
        0.05,
        0.9,
    )
    cols = {stacked.terms[c] for c in pairs.cols}
    assert MF5 in cols  # only the `noise` member scores MF5: still a candidate
    assert pairs.names == ["signal", "noise", "ia", "depth", "aspect"]  # no training frequency (leakage)
    raw = stacked.combine(members, ids)
    submission = SimpleNamespace(max_terms=1500, sig=3, min_score=0.001)
    final = finalize(raw, ontology, submission).reindex(terms=TERMS).matrix.toarray()
    parent_child = [(BP1, BP2), (BP, BP1), (MF4, MF5), (MF, MF4)]
    for parent, child in parent_child:
        p, c = TERMS.index(parent), TERMS.index(child)
        assert (final[:, p] >= final[:, c]).all()  # a parent scores at least its best child
