"""The echo of a holdout query's own reference entry (predictors/reference_echo.py) on a hand-made dated example:
the 2014 reference knows the query's term B (its own entry), one of its orthologs carries a copy of B; the vote
without the echo is computed by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from cafa_mlflow.data.reference import sequence_hash
from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.predictors.homology import hits_to_scores
from cafa_mlflow.predictors.reference_echo import (
    copy_free_vote,
    masked_vote,
    own_entry_rows,
    own_term_mask,
    term_closure,
)

# one aspect: ROOT <- A <- B, ROOT <- C. Reference 2014 (propagated labels, direct terms):
#   OWN (the query's own entry): B          -> ROOT, A, B
#   H1 (ortholog, a copy of B):  B          -> ROOT, A, B
#   H2 (paralog):                A, C       -> ROOT, A, C
TERMS = ["ROOT", "A", "B", "C"]
PROPAGATED = {"OWN": "ROOT A B", "H1": "ROOT A B", "H2": "ROOT A C"}
DIRECT = pd.DataFrame({"protein": ["OWN", "H1", "H2", "H2"], "term": ["B", "B", "A", "C"]})
ROOT_COL = np.zeros(len(TERMS), dtype=np.int64)  # every term's aspect root is column 0
SEQ = {"OWN": "MKVLAA", "H1": "MKVLSA", "H2": "MKTLGA"}


def reference() -> TermMatrix:
    rows = [[t in PROPAGATED[p].split() for t in TERMS] for p in PROPAGATED]
    return TermMatrix(list(PROPAGATED), TERMS, sp.csr_matrix(np.array(rows, dtype=np.float32)))


# query Q (accession OWN) hits H1 (bitscore 30) and H2 (10); query R has no own entry and the same hits
HITS = pd.DataFrame(
    {"qseqid": ["Q", "Q", "R", "R"], "sseqid": ["H1", "H2", "H1", "H2"], "bitscore": [30.0, 10.0, 30.0, 10.0]}
)


def scores(rule: str) -> dict[str, dict[str, float]]:
    labels = reference()
    rows = np.array([0, -1])  # Q's own entry is OWN (row 0); R has none
    direct = DIRECT if rule == "drop_direct" else None
    mask = own_term_mask(rows, labels, direct, ROOT_COL) if rule != "vote" else sp.csr_matrix((2, len(TERMS)))
    tm = masked_vote(HITS, ["Q", "R"], labels, mask, ROOT_COL)
    dense = tm.matrix.toarray()
    return {q: dict(zip(TERMS, dense[i].round(6))) for i, q in enumerate(["Q", "R"])}


def test_vote_with_the_echo_matches_the_plain_vote():
    # by hand: ROOT 40/40, A (H1 and H2) 40/40, B (H1) 30/40, C (H2) 10/40
    expected = {"ROOT": 1.0, "A": 1.0, "B": 0.75, "C": 0.25}
    got = scores("vote")
    assert got["Q"] == expected and got["R"] == expected
    plain = hits_to_scores(HITS, ["Q", "R"], reference(), False, 0, root_col=ROOT_COL)
    np.testing.assert_allclose(plain.matrix.toarray(), np.array([list(expected.values())] * 2), rtol=1e-6)


def test_drop_direct_removes_only_the_copied_term():
    got = scores("drop_direct")
    # H1 no longer transfers B (the own entry's direct term); A still comes from H1 and H2, C from H2
    assert got["Q"] == {"ROOT": 1.0, "A": 1.0, "B": 0.0, "C": 0.25}
    assert got["R"] == {"ROOT": 1.0, "A": 1.0, "B": 0.75, "C": 0.25}  # no own entry: nothing removed


def test_drop_propagated_keeps_roots_and_denominators():
    got = scores("drop_propagated")
    # neither A nor B may be transferred to Q; the root column is never masked, so C keeps 10 / 40
    assert got["Q"] == {"ROOT": 1.0, "A": 0.0, "B": 0.0, "C": 0.25}
    assert got["R"]["B"] == pytest.approx(0.75)


def test_own_entry_found_by_accession_id_map_or_identical_sequence():
    labels = reference()
    ref_hash = pd.Series(sequence_hash([SEQ[p] for p in labels.proteins]), index=labels.proteins)
    queries = ["OWN", "T96060000001", "NEW", "ELSE"]
    qhash = sequence_hash([SEQ["H1"] + "W", SEQ["OWN"] + "W", SEQ["H2"], "MMMM"])
    rows = own_entry_rows(queries, qhash, labels.proteins, ref_hash, {"T96060000001": "OWN"})
    # by its id; by the accession its target id maps to; by an identical sequence (H2's); none
    assert rows.tolist() == [0, 0, 2, -1]


def test_drop_copies_rebuilds_the_hits_labels_without_the_copy():
    # closure over TERMS (each term's ancestors, itself included): ROOT; A -> ROOT; B -> A, ROOT; C -> ROOT
    closure = sp.csr_matrix(np.array([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 1]], dtype=np.float32))
    tm = copy_free_vote(HITS, ["Q", "R"], reference(), np.array([0, -1]), DIRECT, closure, ROOT_COL)
    got = {q: dict(zip(TERMS, tm.matrix.toarray()[i].round(6))) for i, q in enumerate(["Q", "R"])}
    # H1's only annotation was the copy of B: without it H1 carries nothing and leaves the denominator; H2
    # (A, C) votes alone for Q: 10 / 10 each. R has no own entry: the plain vote
    assert got["Q"] == {"ROOT": 1.0, "A": 1.0, "B": 0.0, "C": 1.0}
    assert got["R"] == {"ROOT": 1.0, "A": 1.0, "B": 0.75, "C": 0.25}


def test_term_closure_from_the_ontology(tmp_path):
    from predictor_fixtures import tiny_ontology

    terms = ["GO:0000002", "GO:0008150", "GO:0000001", "GO:0003674"]  # BP2 <- BP1 <- BP root; MF root
    closure = term_closure(terms, tiny_ontology(tmp_path)).toarray()
    assert closure.tolist() == [[1, 1, 1, 0], [0, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 1]]
