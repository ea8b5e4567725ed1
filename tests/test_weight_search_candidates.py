"""The weight search's shortcuts: the aligned weighted sum equals the sparse one value for value, each
(aspect, weights) is scored once, and the line search lands where coordinate ascent does."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from predictor_fixtures import TERMS, labels, tiny_ontology

from cafa_mlflow.evaluation.scorer import Scorer
from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.predictors.combine.candidates import AlignedMembers, AspectScores
from cafa_mlflow.predictors.combine.weights import _weighted_sum, fit_weights

BP, BP1, BP2, CC, CC3, MF, MF4, MF5 = TERMS
IA = {t: 1.0 for t in TERMS}


def random_members(seed: int, n_rows: int = 30, n_cols: int = 8) -> dict[str, sp.csr_matrix]:
    rng = np.random.default_rng(seed)
    out = {}
    for i, density in enumerate((0.3, 0.6, 0.05)):
        m = sp.random(n_rows, n_cols, density=density, random_state=rng, dtype=np.float32, format="csr")
        out[f"m{i}"] = m
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_aligned_weighted_sum_equals_the_sparse_sum(seed):
    mats = random_members(seed)
    names = list(mats)
    col_w = np.random.default_rng(seed).choice([0.0, 0.05, 0.35, 0.6], size=(3, 8))
    col_w[2] = 0.0  # a member with no weight anywhere is skipped by both
    want = _weighted_sum(names, mats, col_w)
    got = AlignedMembers(names, mats).weighted_sum(col_w)
    assert got.dtype == want.dtype and got.has_canonical_format
    assert np.array_equal(got.indptr, want.indptr) and np.array_equal(got.indices, want.indices)
    assert got.data.tobytes() == want.data.tobytes()


def test_each_aspect_weights_are_scored_once_and_the_others_zeroed():
    calls = []

    def score(per_aspect):
        calls.append({a: tuple(v) for a, v in per_aspect.items()})
        return {a: float(v[0]) for a, v in per_aspect.items()}

    scores = AspectScores(score, 2)
    first = scores({"BPO": np.array([0.3, 0.7]), "CCO": np.array([0.5, 0.5])})
    again = scores({"BPO": np.array([0.3, 0.7]), "CCO": np.array([0.5, 0.5])})
    mixed = scores({"BPO": np.array([0.3, 0.7]), "CCO": np.array([0.9, 0.1])})
    assert first == again == {"BPO": 0.3, "CCO": 0.5} and mixed == {"BPO": 0.3, "CCO": 0.9}
    assert len(calls) == 2 and calls[1] == {"BPO": (0.0, 0.0), "CCO": (0.9, 0.1)}


def test_line_search_agrees_with_coordinate_ascent(tmp_path):
    onto = tiny_ontology(tmp_path)
    ids = ["v1", "v2", "v3"]
    truth = labels(ids, [[BP, BP1, CC, MF, MF4], [BP, CC, CC3, MF], [BP, BP2, CC, MF, MF5]])
    members = {
        "a": TermMatrix(ids, TERMS, truth.matrix * 0.5),
        "b": TermMatrix(ids, TERMS, sp.csr_matrix(np.where(truth.matrix.toarray() > 0, 0.0, 0.9).astype(np.float32))),
        "c": TermMatrix(ids, TERMS, sp.csr_matrix(np.full((3, 8), 0.2, np.float32))),
    }
    scorer = Scorer(onto, truth, IA)
    traces = {"coordinate": [], "line": []}
    fitted = {
        method: fit_weights(members, truth, lambda t, p: scorer(p), onto, 0.1, method, trace=traces[method])
        for method in traces
    }
    assert fitted["line"] == fitted["coordinate"]
    assert all(w["a"] > 0.4 for w in fitted["line"].values())  # moved away from the equal start (0.4, 0.3, 0.3)
    assert all(t["scores"]["BPO"] <= max(u["scores"]["BPO"] for u in traces["line"]) for t in traces["coordinate"])
