"""Information accretion from annotations (Clark & Radivojac 2013).

IA(t) = -log2 P(t | all parents of t), estimated on propagated annotations as
-log2(#proteins annotated with t / #proteins annotated with every direct parent of t); parents are the
is_a and part_of edges within one namespace, as in `Ontology.parents`. Conventions: roots get 0, a term
no protein carries gets 0, and so does the 0/0 case (no protein carries all the parents); the Kaggle
and CAFA-evaluator IA files follow the same conventions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.go.ontology import Ontology

BLOCK_ROWS = 4096  # proteins per block: bounds the (proteins x terms) parent-count matrix in memory


def term_counts(
    labels: sp.csr_matrix, ontology: Ontology, block_rows: int = BLOCK_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """(#proteins with t, #proteins with all parents of t) per term, from a propagated 0/1 matrix."""
    labels = sp.csr_matrix(labels, dtype=bool).astype(np.int32)
    parents_t = ontology.parents.T.astype(np.int32).tocsr()  # [j, t] = 1 when j is a parent of t
    n_parents = np.diff(ontology.parents.indptr)
    n_terms = len(ontology)
    with_term = np.asarray(labels.sum(axis=0)).ravel().astype(np.int64)
    with_parents = np.zeros(n_terms, dtype=np.int64)
    for start in range(0, labels.shape[0], block_rows):
        # [p, t] = how many parents of t protein p carries; all of them when it equals |Pa(t)|
        hits = (labels[start : start + block_rows] @ parents_t).tocsr()
        full = hits.data == n_parents[hits.indices]
        with_parents += np.bincount(hits.indices[full], minlength=n_terms)
    return with_term, with_parents


def compute_ia(
    labels: TermMatrix | sp.spmatrix, ontology: Ontology, block_rows: int = BLOCK_ROWS, propagated: bool = False
) -> pd.Series:
    """IA per ontology term (index = `ontology.terms`, file order) from raw or propagated labels.

    A TermMatrix is reindexed onto the ontology's terms; a bare sparse matrix must already be over
    `ontology.terms`. Labels are propagated here unless `propagated` says they already are (as
    `label_matrix` gives them)."""
    if isinstance(labels, TermMatrix):
        matrix = labels.reindex(terms=ontology.terms).matrix
    else:
        matrix = sp.csr_matrix(labels)
        if matrix.shape[1] != len(ontology):
            raise ValueError(f"label matrix has {matrix.shape[1]} columns, the ontology {len(ontology)} terms")
    if not propagated:
        matrix = ontology.propagate(matrix > 0)
    with_term, with_parents = term_counts(matrix, ontology, block_rows)
    ia = np.zeros(len(ontology), dtype=np.float64)
    has_parents = np.diff(ontology.parents.indptr) > 0
    ok = has_parents & (with_term > 0) & (with_parents > 0)
    ia[ok] = 0.0 - np.log2(with_term[ok] / with_parents[ok])  # 0.0 - x: no '-0' when P = 1
    return pd.Series(ia, index=pd.Index(ontology.terms, name="term"), name="ia")
