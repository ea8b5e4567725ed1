"""Candidate (protein, term) pairs and their features for the stacker (`ensemble.method: stacker`).

Candidates: every term a member scores >= `member_floor` for the protein, plus every term whose frequency among
the fitted proteins is >= `naive_floor` (so proteins without homologs still get the frequent terms). Features per
pair (`member_pairs`): each member's score and its best score for the protein in the term's aspect, the term's IA,
depth (number of ancestors) and aspect. The learned ensemble adds the search members' hit statistics
(combine/hit_pairs.py) to the same candidates.
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


def member_pairs(
    members: Mapping[str, sp.csr_matrix],
    freq: np.ndarray,
    terms: TermInfo,
    member_floor: float,
    naive_floor: float,
) -> Pairs:
    """Candidates and features from members' scores alone (any members, no hit tables): per pair each
    member's score and its best score for the protein in the term's aspect (how sure the member is about
    the protein at all), the term's IA, depth and aspect. Candidates: member scores >= member_floor, and
    terms with frequency >= naive_floor for every protein. The frequency is not a column: computed from the
    fitted proteins' own labels, a rare term's frequency would name its few carriers among them (target
    leakage); the naive member's out-of-fold prior, when it is a member, is the frequency feature."""
    n_rows = next(iter(members.values())).shape[0]
    rows, cols = candidates(members, freq[None, :], np.zeros(n_rows, np.int64), member_floor, naive_floor)
    aspect = terms.aspect_code.astype(np.int64)
    names, columns = [], []
    for name, m in members.items():
        m = sp.csr_matrix(m)
        best = np.zeros((n_rows, int(aspect.max(initial=0)) + 1), np.float32)
        r = np.repeat(np.arange(n_rows), np.diff(m.indptr))
        np.maximum.at(best, (r, aspect[m.indices]), m.data)
        names += [name, f"{name}_top"]
        columns += [gather(m, rows, cols), best[rows, aspect[cols]]]
    names += ["ia", "depth", "aspect"]
    columns += [terms.ia[cols], terms.depth[cols], terms.aspect_code[cols]]
    return Pairs(rows, cols, np.column_stack(columns).astype(np.float32), names)


def term_info(terms: Sequence[str], ontology, ia: Mapping[str, float]) -> TermInfo:
    """IA, ancestor count and aspect code (index in ontology.aspects) of each term."""
    idx = np.array([ontology.index[t] for t in terms])
    aspects = list(ontology.aspects)
    code = np.array([aspects.index(a) for a in ontology.aspect[idx]], dtype=np.float32)
    depth = ontology.ancestors.getnnz(axis=1)[idx].astype(np.float32)
    return TermInfo(np.array([ia.get(t, 0.0) for t in terms], np.float32), depth, code)
