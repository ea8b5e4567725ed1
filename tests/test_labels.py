"""Sparse label matrices: building, vocabulary filter (min_count / top_k), per aspect, save/load; never dense."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from cafa_mlflow.go.labels import (
    TermMatrix,
    aspect_labels,
    label_matrix,
    load_term_matrix,
    save_term_matrix,
    select_terms,
)
from cafa_mlflow.go.ontology import load_obo
from tests.cafa_fixtures import OBO, write


@pytest.fixture
def no_dense(monkeypatch):
    """Fail the test if anything turns a sparse matrix dense."""

    def boom(*_a, **_k):
        raise AssertionError("a sparse matrix was made dense")

    for cls in (sp.csr_matrix, sp.csc_matrix, sp.coo_matrix):
        monkeypatch.setattr(cls, "toarray", boom)
        monkeypatch.setattr(cls, "todense", boom)


@pytest.fixture(scope="module")
def onto(tmp_path_factory):
    return load_obo(write(tmp_path_factory.mktemp("obo") / "go.obo", OBO))


def test_label_matrix_propagates_and_stays_sparse(onto, no_dense):
    ann = pd.DataFrame(
        {"protein": ["A", "A", "B", "Z"], "term": ["GO:0000005", "GO:0000011", "GO:0000021", "GO:0000002"]}
    )
    tm = label_matrix(ann, onto, ["A", "B", "C"])  # Z is not asked for; C has no annotation
    assert isinstance(tm.matrix, sp.csr_matrix) and tm.matrix.dtype == np.float32
    assert tm.shape == (3, len(onto))
    got = {p: sorted(tm.terms[j] for j in tm.matrix[r].indices) for r, p in enumerate(tm.proteins)}
    assert got == {
        "A": ["GO:0000001", "GO:0000002", "GO:0000003", "GO:0000004", "GO:0000005", "GO:0000010", "GO:0000011"],
        "B": ["GO:0000020", "GO:0000021"],
        "C": [],
    }
    bp = aspect_labels(tm, onto.aspect, "BPO")
    assert bp.terms == onto.terms[:5] and bp.matrix.sum(axis=1).A1.tolist() == [5, 0, 0]


def test_select_terms_min_count_and_top_k(no_dense):
    # column counts: a 5, b 3, c 3, d 1 (aspect X); e 4, f 2 (aspect Y)
    counts = [5, 3, 3, 1, 4, 2]
    rows = np.concatenate([np.arange(c) for c in counts])
    cols = np.repeat(np.arange(6), counts)
    tm = TermMatrix(
        [f"p{i}" for i in range(5)], list("abcdef"), sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(5, 6))
    )
    aspect = np.array(["X", "X", "X", "X", "Y", "Y"], dtype=object)
    assert select_terms(tm, aspect, min_count=1).tolist() == [0, 1, 2, 3, 4, 5]
    assert select_terms(tm, aspect, min_count=0).tolist() == [0, 1, 2, 3, 4, 5]  # empty columns never kept
    assert select_terms(tm, aspect, min_count=3).tolist() == [0, 1, 2, 4]
    assert select_terms(tm, aspect, min_count=1, top_k=2).tolist() == [0, 1, 4, 5]  # tie b/c: column order
    assert select_terms(tm, aspect, min_count=3, top_k=1).tolist() == [0, 4]


def test_full_scale_shape_is_fine_sparse(no_dense):
    # 200k x 40k float32 would be 32 GB dense; the filter works on it in milliseconds
    n, t = 200_000, 40_000
    rng = np.random.default_rng(0)
    m = sp.csr_matrix(
        (np.ones(50_000, np.float32), (rng.integers(0, n, 50_000), rng.integers(0, 100, 50_000))), shape=(n, t)
    )
    tm = TermMatrix([str(i) for i in range(n)], [f"T{j}" for j in range(t)], m)
    keep = select_terms(tm, np.array(["X"] * t, dtype=object), min_count=5, top_k=10)
    assert len(keep) == 10 and keep.max() < 100
    assert tm.reindex(terms=[tm.terms[j] for j in keep]).shape == (n, 10)


def test_from_frame_reindex_to_frame_round_trip(tmp_path):
    frame = pd.DataFrame(
        {"protein": ["A", "A", "B", "A"], "term": ["t1", "t2", "t1", "t1"], "score": [0.5, 0.25, 1.0, 0.75]}
    )
    tm = TermMatrix.from_frame(frame)
    assert tm.proteins == ["A", "B"] and tm.terms == ["t1", "t2"]
    assert tm.matrix.toarray().tolist() == [[0.75, 0.25], [1.0, 0.0]]  # repeated pair keeps its max
    re = tm.reindex(proteins=["B", "C"], terms=["t2", "t1", "t3"])
    assert re.matrix.toarray().tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    assert re.to_frame().to_dict("list") == {"protein": ["B"], "term": ["t1"], "score": [1.0]}
    save_term_matrix(tmp_path / "m.npz", tm)
    back = load_term_matrix(tmp_path / "m.npz")
    assert back.proteins == tm.proteins and back.terms == tm.terms
    assert (back.matrix != tm.matrix).nnz == 0
    with pytest.raises(ValueError, match="matrix shape"):
        TermMatrix(["A"], ["t1"], sp.csr_matrix((2, 1)))
