"""Hit statistics per (query, term) on a hand-made case: 2 queries, 3 hits, 3 terms (values worked out by hand)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from cafa_mlflow.predictors.hit_features import HitFeatures, hit_features, stack_features

TERMS = ["t1", "t2", "t3"]


def hand_case() -> HitFeatures:
    # target a carries t1, t2; target b carries t2, t3 (rows of pair_labels follow the hits)
    hits = pd.DataFrame(
        {
            "qseqid": ["q1", "q1", "q2"],
            "sseqid": ["a", "b", "a"],
            "pident": [90.0, 50.0, 30.0],
            "evalue": [1e-50, 1e-10, 1e-3],
            "bitscore": [200.0, 60.0, 40.0],
            "qcovhsp": [80.0, 40.0, 90.0],
            "qlen": [100.0, 100.0, 300.0],
        }
    )
    pair_labels = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1], [1, 1, 0]], np.float32))
    return hit_features(hits, ["q1", "q2", "q3"], pair_labels, TERMS)


def dense(f: HitFeatures, name: str) -> np.ndarray:
    return f.term[name].toarray()


def test_term_statistics_by_hand() -> None:
    f = hand_case()
    np.testing.assert_allclose(dense(f, "best_ident"), [[90, 90, 50], [30, 30, 0], [0, 0, 0]])
    np.testing.assert_allclose(dense(f, "best_bits"), [[200, 200, 60], [40, 40, 0], [0, 0, 0]])
    np.testing.assert_allclose(dense(f, "best_log_e"), [[50, 50, 10], [3, 3, 0], [0, 0, 0]], rtol=1e-5)
    np.testing.assert_allclose(dense(f, "n_hits"), [[1, 2, 1], [1, 1, 0], [0, 0, 0]])
    np.testing.assert_allclose(dense(f, "share"), [[0.5, 1.0, 0.5], [1, 1, 0], [0, 0, 0]])
    # coverage of the best-bitscore hit carrying the term: t2 of q1 is carried by a (80 %) and b (40 %)
    np.testing.assert_allclose(dense(f, "best_cov"), [[80, 80, 40], [90, 90, 0], [0, 0, 0]])


def test_protein_statistics_by_hand() -> None:
    f = hand_case()
    np.testing.assert_allclose(f.protein["hits"], [2, 1, 0])
    np.testing.assert_allclose(f.protein["top_bits"], [200, 40, 0])
    np.testing.assert_allclose(f.protein["qlen"], [100, 300, 0])


def test_reindex_save_load_and_stack(tmp_path) -> None:
    f = hand_case()
    g = f.reindex(["q2", "zz", "q1"], ["t3", "t2"])
    np.testing.assert_allclose(g.term["n_hits"].toarray(), [[0, 1], [0, 0], [1, 2]])
    np.testing.assert_allclose(g.protein["qlen"], [300, 0, 100])
    back = HitFeatures.load(g.save(tmp_path / "f.npz"))
    assert back.proteins == g.proteins and back.terms == g.terms
    for name in g.term:
        np.testing.assert_allclose(back.term[name].toarray(), g.term[name].toarray())
    joined = stack_features([f.reindex(["q2"]), f.reindex(["q1"], ["t3"])], ["q1", "q2"])
    assert joined.terms == TERMS
    np.testing.assert_allclose(joined.term["best_bits"].toarray(), [[0, 0, 60], [40, 40, 0]])


def test_hits_of_unknown_queries_are_refused() -> None:
    hits = pd.DataFrame(
        {"qseqid": ["x"], "sseqid": ["a"], "pident": [1.0], "evalue": [1.0], "bitscore": [1.0]}
        | {"qcovhsp": [1.0], "qlen": [1.0]}
    )
    with pytest.raises(ValueError):
        hit_features(hits, ["q1"], sp.csr_matrix(np.ones((1, 3), np.float32)), TERMS)
