"""What the stacker's candidate pairs are made of (combine/hit_pairs.py builds them): the pairs and their feature
matrix (`Pairs`), the candidates (`candidates`), cell lookup in a sparse matrix (`gather`) and each term's IA, depth
and aspect (`term_info`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass
class TermInfo:
    """Per-term (columns of the label space) features: IA, depth (ancestor count), aspect code."""

    ia: np.ndarray
    depth: np.ndarray
    aspect_code: np.ndarray


@dataclass
class Pairs:
    """Candidate pairs (row, col) and their feature matrix X (float32, columns named `names`)."""

    rows: np.ndarray
    cols: np.ndarray
    X: np.ndarray
    names: list[str]


def gather(m: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """m[rows[i], cols[i]] for every i (0 where absent), without densifying m."""
    m = sp.csr_matrix(m)
    m.sum_duplicates()
    m.sort_indices()
    keys = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr)) * m.shape[1] + m.indices
    want = rows.astype(np.int64) * m.shape[1] + cols
    pos = np.minimum(np.searchsorted(keys, want), max(len(keys) - 1, 0))
    found = (keys[pos] == want) if len(keys) else np.zeros(len(want), bool)
    return np.where(found, m.data[pos] if len(keys) else 0.0, 0.0).astype(np.float32)


def candidates(
    members: Mapping[str, sp.csr_matrix],
    naive_rows: np.ndarray,
    which: np.ndarray,
    member_floor: float,
    naive_floor: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique (row, col) candidates: member scores >= member_floor, naive prior >= naive_floor."""
    n_rows, n_cols = len(which), naive_rows.shape[1]
    keys = []
    for m in members.values():
        m = sp.csr_matrix(m)
        r = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
        ok = m.data >= member_floor
        keys.append(r[ok] * n_cols + m.indices[ok])
    for f in np.unique(which):
        cols = np.flatnonzero(naive_rows[f] >= naive_floor)
        r = np.flatnonzero(which == f).astype(np.int64)
        keys.append((r[:, None] * n_cols + cols[None, :]).ravel())
    keys = np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.int64)
    assert n_rows == 0 or keys.max(initial=0) < n_rows * n_cols
    return keys // n_cols, keys % n_cols


def term_info(terms: Sequence[str], ontology, ia: Mapping[str, float]) -> TermInfo:
    """IA, ancestor count and aspect code (index in ontology.aspects) of each term."""
    idx = np.array([ontology.index[t] for t in terms])
    aspects = list(ontology.aspects)
    code = np.array([aspects.index(a) for a in ontology.aspect[idx]], dtype=np.float32)
    depth = ontology.ancestors.getnnz(axis=1)[idx].astype(np.float32)
    return TermInfo(np.array([ia.get(t, 0.0) for t in terms], np.float32), depth, code)
