"""Sparse proteins x terms matrices (labels or scores) and term vocabularies."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cafa_mlflow.go.ontology import Ontology
from cafa_mlflow.io import integrity
from cafa_mlflow.io.readback import reading
from cafa_mlflow.io.text import atomic_write

log = logging.getLogger(__name__)


@dataclass
class TermMatrix:
    """proteins x terms CSR matrix (float32): 0/1 labels or scores; rows and columns carry their ids."""

    proteins: list[str]
    terms: list[str]
    matrix: sp.csr_matrix

    def __post_init__(self) -> None:
        self.proteins = list(self.proteins)
        self.terms = list(self.terms)
        self.matrix = sp.csr_matrix(self.matrix, dtype=np.float32)
        if self.matrix.shape != (len(self.proteins), len(self.terms)):
            raise ValueError(f"matrix shape {self.matrix.shape} != ({len(self.proteins)}, {len(self.terms)})")

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    def reindex(self, proteins: Sequence[str] | None = None, terms: Sequence[str] | None = None) -> TermMatrix:
        """Same scores over other row/column ids: missing ones are empty, extra ones dropped."""
        m = self.matrix
        if proteins is not None:
            m = _take(m, self.proteins, proteins, axis=0)
        if terms is not None:
            m = _take(m.tocsc(), self.terms, terms, axis=1).tocsr()
        return TermMatrix(
            proteins if proteins is not None else self.proteins, terms if terms is not None else self.terms, m
        )

    def to_frame(self) -> pd.DataFrame:
        """Long table (protein, term, score) of the nonzero entries, in row order."""
        coo = self.matrix.tocoo()
        return pd.DataFrame(
            {
                "protein": np.asarray(self.proteins, dtype=object)[coo.row],
                "term": np.asarray(self.terms, dtype=object)[coo.col],
                "score": coo.data,
            }
        )

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        proteins: Sequence[str] | None = None,
        terms: Sequence[str] | None = None,
        value: str | None = "score",
    ) -> TermMatrix:
        """Build from a long table with columns protein, term (and `value`; 1.0 when None).
        Repeated (protein, term) pairs keep their maximum."""
        proteins = list(pd.unique(frame["protein"])) if proteins is None else list(proteins)
        terms = list(pd.unique(frame["term"])) if terms is None else list(terms)
        rows = pd.Index(proteins).get_indexer(frame["protein"])
        cols = pd.Index(terms).get_indexer(frame["term"])
        vals = np.ones(len(frame), np.float32) if value is None else frame[value].to_numpy(np.float32)
        keep = (rows >= 0) & (cols >= 0)
        dedup = (
            pd.DataFrame({"r": rows[keep], "c": cols[keep], "v": vals[keep]}).groupby(["r", "c"], sort=False)["v"].max()
        )
        r, c = dedup.index.get_level_values(0), dedup.index.get_level_values(1)
        m = sp.csr_matrix((dedup.to_numpy(np.float32), (r, c)), shape=(len(proteins), len(terms)))
        return cls(proteins, terms, m)


def save_term_matrix(path: str | os.PathLike, tm: TermMatrix) -> None:
    """One .npz holding the CSR arrays and both id lists; written atomically."""
    m = tm.matrix
    with atomic_write(path, "wb") as out:
        np.savez_compressed(
            out,
            data=m.data,
            indices=m.indices,
            indptr=m.indptr,
            shape=np.array(m.shape),
            proteins=np.array(tm.proteins, dtype=str),
            terms=np.array(tm.terms, dtype=str),
        )


def load_term_matrix(path: str | os.PathLike) -> TermMatrix:
    """A saved TermMatrix; checked against the checksum recorded when its folder was written."""
    integrity.verify(path)
    with reading(path), np.load(path, allow_pickle=False) as z:  # a damaged or foreign file: one line naming it
        m = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
        return TermMatrix(z["proteins"].tolist(), z["terms"].tolist(), m)


def read_submission(
    path: str | os.PathLike,
    proteins: Sequence[str] | None = None,
    terms: Sequence[str] | None = None,
    max_terms: int | None = None,
) -> TermMatrix:
    """A submission file as a TermMatrix (repeated pairs keep their max); see
    cafa_mlflow.io.submission.read_cells for the ids kept and the errors. Logs one warning per
    submission rule broken that the metric does not need (terms per protein, significant figures,
    repeated pairs), with a count and an example; proteins left out by `proteins` are not checked."""
    from cafa_mlflow.io.submission import MAX_TERMS, SIG_FIGS, read_cells  # pyarrow: imported when needed

    max_terms = MAX_TERMS if max_terms is None else max_terms
    cells = read_cells(path, None if proteins is None else list(proteins), None if terms is None else list(terms))
    shape = (len(cells.proteins), len(cells.terms))
    matrix = max_csr(cells.rows, cells.cols, cells.scores, shape)
    per_protein = np.bincount(cells.rows, minlength=shape[0])
    over = np.flatnonzero(per_protein > max_terms)
    if len(over):
        log.warning(
            "%s: %d proteins have more than %d terms (a submission rule), e.g. %s with %d; all are scored",
            path,
            len(over),
            max_terms,
            cells.proteins[over[0]],
            per_protein[over[0]],
        )
    if cells.sig_figs[0]:
        log.warning(
            "%s: %d scores have more than %d significant figures (a submission rule), e.g. '%s'",
            path,
            cells.sig_figs[0],
            SIG_FIGS,
            cells.sig_figs[1],
        )
    if matrix.nnz < len(cells.scores):
        log.warning(
            "%s: %d (protein, term) pairs are listed more than once (a submission rule); each keeps its highest score",
            path,
            len(cells.scores) - matrix.nnz,
        )
    return TermMatrix(cells.proteins, cells.terms, matrix)


def max_csr(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """float32 CSR of (row, col, value) entries; a repeated cell keeps its max."""
    m = sp.csr_matrix((vals, (rows, cols)), shape=shape, dtype=np.float32)  # sums repeats: only right without any
    if m.nnz == len(vals):
        return m
    keys = np.asarray(rows, dtype=np.int64) * shape[1] + cols
    order = np.lexsort((-vals, keys))  # by cell, highest value first
    keys, vals = keys[order], vals[order]
    first = np.r_[True, keys[1:] != keys[:-1]]
    keys, vals = keys[first], vals[first]
    return sp.csr_matrix((vals, (keys // shape[1], keys % shape[1])), shape=shape, dtype=np.float32)


def _take(m: sp.spmatrix, have: Sequence[str], want: Sequence[str], axis: int) -> sp.spmatrix:
    pos = pd.Index(have).get_indexer(list(want))
    found = pos >= 0
    sel = np.flatnonzero(found)
    picker = sp.csr_matrix((np.ones(len(sel), np.float32), (sel, pos[found])), shape=(len(want), len(have)))
    return picker @ m if axis == 0 else m @ picker.T


def label_matrix(annotations: pd.DataFrame, ontology: Ontology, proteins: Sequence[str]) -> TermMatrix:
    """Propagated 0/1 labels over all ontology terms from a (protein, term) table of resolved ids."""
    raw = TermMatrix.from_frame(annotations, proteins=proteins, terms=ontology.terms, value=None)
    return TermMatrix(raw.proteins, raw.terms, ontology.propagate(raw.matrix))


def select_terms(labels: TermMatrix, aspect_of_term: np.ndarray, min_count: int, top_k: int = 0) -> np.ndarray:
    """Column indices of terms carried by >= min_count proteins, at most top_k most frequent per aspect
    (top_k 0 = no cap), in ontology order."""
    counts = np.asarray((labels.matrix > 0).sum(axis=0)).ravel()
    keep = counts >= max(min_count, 1)
    if top_k:
        for aspect in np.unique(aspect_of_term):
            idx = np.flatnonzero(keep & (aspect_of_term == aspect))
            if len(idx) > top_k:
                drop = idx[np.argsort(-counts[idx], kind="stable")[top_k:]]
                keep[drop] = False
    return np.flatnonzero(keep)


def aspect_labels(labels: TermMatrix, term_aspect: Sequence[str] | np.ndarray, aspect: str) -> TermMatrix:
    """The columns of one aspect (e.g. 'BPO'), still sparse; `term_aspect` gives each column's aspect."""
    cols = np.flatnonzero(np.asarray(term_aspect, dtype=object) == aspect)
    return TermMatrix(labels.proteins, [labels.terms[j] for j in cols], labels.matrix[:, cols])
