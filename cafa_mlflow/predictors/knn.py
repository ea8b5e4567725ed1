"""k-nearest-neighbour label transfer in embedding space (cosine similarity).

score(t) = sum_j s_j * y_jt / sum_j s_j over the k most similar training proteins j, with s_j the
cosine similarity clipped at 0. Queries are processed in blocks (block x all train, float32), so memory
is bounded by block_size x n_train x 4 bytes plus the float32 unit-normalised training matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cafa_mlflow.errors import ConfigError, InputError, MissingWeightsError
from cafa_mlflow.go.labels import TermMatrix, load_term_matrix, save_term_matrix
from cafa_mlflow.io.readback import load_npy, read_json
from cafa_mlflow.io.text import atomic_write, write_json
from cafa_mlflow.predictors.base import EMBEDDING, Predictor, ProteinSet, TrainSet
from cafa_mlflow.predictors.transfer import aspect_root_columns, vote

if TYPE_CHECKING:
    from cafa_mlflow.config.schema import KnnParams
    from cafa_mlflow.go.ontology import Ontology


def _unit_rows(x: Any, block_size: int = 8192) -> np.ndarray:
    """float32 copy of x (may be a float16 memmap) with rows scaled to unit L2 norm (zero rows stay 0)."""
    out = np.empty(x.shape, dtype=np.float32)
    for start in range(0, x.shape[0], block_size):
        block = np.asarray(x[start : start + block_size], dtype=np.float32)
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + block_size] = block / np.where(norms > 0, norms, 1.0)
    return out


def _checked_labels(queries: Any, train: Any, labels: sp.spmatrix, k: int, block_size: int) -> sp.csr_matrix:
    """`labels` as float32 CSR, once k, block_size and the shapes agree (ConfigError / InputError otherwise)."""
    if k < 1 or block_size < 1:
        raise ConfigError(f"knn.k={k} and knn.block_size={block_size} must both be >= 1.")
    if queries.shape[1] != train.shape[1]:
        raise InputError(
            f"query embeddings have {queries.shape[1]} dimensions, training embeddings "
            f"{train.shape[1]}; embed both with the same model and layer."
        )
    labels = sp.csr_matrix(labels, dtype=np.float32)
    if labels.shape[0] != train.shape[0]:
        raise InputError(f"{labels.shape[0]} label rows for {train.shape[0]} training embeddings.")
    return labels


def _nearest(sims: np.ndarray, k_eff: int) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, similarities clipped at 0), queries x k_eff, of a block's k_eff most similar."""
    n_train = sims.shape[1]
    if k_eff < n_train:  # top-k columns per row, unordered; self (-inf) is never among them
        # a copy: the slice is a view that would keep the whole block x n_train index array alive in
        # `neighbours` (at Kaggle's size, 438 blocks x 300 MB)
        top = np.argpartition(sims, n_train - k_eff, axis=1)[:, n_train - k_eff :].copy()
    else:
        top = np.tile(np.arange(n_train), (sims.shape[0], 1))
    w = np.clip(np.take_along_axis(sims, top, axis=1), 0.0, None)  # -inf (self) and negatives -> 0
    return top, w


def knn_scores(
    queries: Any,
    train: Any,
    labels: sp.spmatrix,
    k: int,
    block_size: int = 512,
    query_ids: Sequence[str] | None = None,
    train_ids: Sequence[str] | None = None,
    exclude_self: bool = True,
    train_unit: np.ndarray | None = None,
    root_col: np.ndarray | None = None,
    neighbours: list | None = None,
) -> sp.csr_matrix:
    """Similarity-weighted label transfer; returns an N_query x T float32 CSR.

    queries: N x D, train: M x D (array-like, float16/32, memmap allowed); labels: M x T.
    With exclude_self and both id lists given, a query never uses the training protein with its own id.
    train_unit: precomputed `_unit_rows(train)` (reused across calls by KnnPredictor).
    root_col: per-aspect denominators (`transfer.aspect_root_columns`): only neighbours annotated in a
    term's aspect count in its denominator. neighbours: a list that receives (training rows, similarities),
    both queries x k, of every query block (the evidence of the vote)."""
    labels = _checked_labels(queries, train, labels, k, block_size)
    n_train = train.shape[0]
    t_unit = _unit_rows(train) if train_unit is None else train_unit
    self_col = None
    if exclude_self and query_ids is not None and train_ids is not None:
        self_col = pd.Index(list(train_ids)).get_indexer(list(query_ids))
    k_eff = min(k, n_train - (1 if self_col is not None and (self_col >= 0).any() else 0))
    blocks = []
    for start in range(0, queries.shape[0], block_size):
        q = _unit_rows(queries[start : start + block_size])
        sims = q @ t_unit.T  # block x n_train, float32
        rows = np.arange(sims.shape[0])
        if self_col is not None:
            own = self_col[start : start + len(q)]
            hit = own >= 0
            sims[rows[hit], own[hit]] = -np.inf
        if k_eff <= 0:
            blocks.append(sp.csr_matrix((len(q), labels.shape[1]), dtype=np.float32))
            continue
        top, w = _nearest(sims, k_eff)
        raw = sp.csr_matrix((w.ravel(), (np.repeat(rows, k_eff), top.ravel())), shape=(len(q), n_train))
        if neighbours is not None:
            neighbours.append((top, w))
        blocks.append(vote(raw, labels, root_col))  # all-neighbour denominators when root_col is None
    if not blocks:
        return sp.csr_matrix((0, labels.shape[1]), dtype=np.float32)
    return sp.vstack(blocks, format="csr")


class KnnPredictor(Predictor):
    """Label transfer from the k nearest training proteins (cosine) over the training term vocabulary."""

    kind = "knn"

    @classmethod
    def from_params(cls, block: KnnParams, ontology: Ontology) -> KnnPredictor:
        return cls(block.k, block.block_size, block.exclude_self, ontology)

    def inputs(self) -> set[str]:
        return {EMBEDDING}

    def embedding_dim(self) -> int | None:
        return None if self.train_unit is None else int(self.train_unit.shape[1])

    def __init__(self, k: int = 10, block_size: int = 512, exclude_self: bool = True, aspect_of: Any = None) -> None:
        """aspect_of (Ontology or {term: aspect}): per-aspect denominators; labels may hold every term."""
        self.k, self.block_size, self.exclude_self = int(k), int(block_size), bool(exclude_self)
        self.aspect_of = aspect_of
        self.root_col: np.ndarray | None = None
        self.train_ids: list[str] | None = None
        self.train_unit: np.ndarray | None = None
        self.labels: TermMatrix | None = None

    def fit(self, train: TrainSet) -> KnnPredictor:
        if self.k < 1 or self.block_size < 1:
            raise ConfigError(f"knn.k={self.k} and knn.block_size={self.block_size} must both be >= 1.")
        if train.embeddings is None:
            raise InputError("knn needs training embeddings; run `cafa embed` on the training FASTA first.")
        self.train_ids, self.labels = train.ids, train.labels
        self.train_unit = _unit_rows(train.embeddings)
        if self.aspect_of is not None:
            self.root_col = aspect_root_columns(self.labels.terms, self.aspect_of)
        return self

    def predict(self, proteins: ProteinSet) -> TermMatrix:
        self._require_fitted("train_unit")
        if proteins.embeddings is None:
            raise InputError("knn needs query embeddings; run `cafa embed` on the query FASTA first.")
        kept: list = []
        scores = knn_scores(
            proteins.embeddings,
            self.train_unit,
            self.labels.matrix,
            self.k,
            self.block_size,
            proteins.ids,
            self.train_ids,
            self.exclude_self,
            train_unit=self.train_unit,
            root_col=self.root_col,
            neighbours=kept,
        )
        self.neighbours = (proteins.ids, kept)  # the vote's neighbours, for evidence()
        return TermMatrix(proteins.ids, self.labels.terms, scores)

    def evidence(self, protein: str, terms: Sequence[str], top: int = 3) -> dict[str, list[dict]] | None:
        """The neighbours of the last predict() that voted for each term, most similar first (cosine)."""
        ids, kept = getattr(self, "neighbours", (None, None))
        if ids is None or self.labels is None:
            return None
        found: dict[str, list[dict]] = {t: [] for t in terms}
        if getattr(self, "_row_of", (None,))[0] is not ids:
            self._row_of = (ids, {pid: i for i, pid in enumerate(ids)})
        row = self._row_of[1].get(protein)
        if row is None or not kept:
            return found
        block, at = divmod(row, self.block_size)
        cols, sims = kept[block][0][at], kept[block][1][at]
        order = np.argsort(-sims, kind="stable")
        cols, sims = cols[order][sims[order] > 0], sims[order][sims[order] > 0]
        term_cols = pd.Index(self.labels.terms).get_indexer(list(terms))
        carried = self.labels.matrix[cols][:, np.maximum(term_cols, 0)].toarray() > 0  # neighbours x terms
        for k, term in enumerate(terms):
            if term_cols[k] >= 0:
                found[term] = [
                    {"member": self.kind, "protein": self.train_ids[cols[j]], "similarity": round(float(sims[j]), 4)}
                    for j in np.flatnonzero(carried[:, k])[:top]
                ]
        return found

    def save_files(self, folder: Path) -> None:
        """Write train_unit.npy (unit-norm float32 training embeddings), labels.npz and config.json."""
        self._require_fitted("train_unit")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / "train_unit.npy", "wb") as handle:
            np.save(handle, self.train_unit)
        save_term_matrix(folder / "labels.npz", self.labels)  # rows = training ids, in embedding order
        if self.root_col is not None:
            with atomic_write(folder / "root_columns.npy", "wb") as handle:
                np.save(handle, self.root_col)
        config = {
            "k": self.k,
            "block_size": self.block_size,
            "exclude_self": self.exclude_self,
            "dim": int(self.train_unit.shape[1]),
        }
        write_json(folder / "config.json", config)

    @classmethod
    def load_files(cls, folder: Path, mmap: bool = True) -> KnnPredictor:
        """A fitted predictor from a folder written by `save` (embeddings memory-mapped by default)."""
        folder = Path(folder)
        if not (folder / "train_unit.npy").is_file() or not (folder / "labels.npz").is_file():
            raise MissingWeightsError(
                f"{folder}: no train_unit.npy/labels.npz; fit and save a knn predictor there first."
            )
        config = read_json(folder / "config.json")
        self = cls(config["k"], config["block_size"], config["exclude_self"])
        self.train_unit = load_npy(folder / "train_unit.npy", mmap_mode="r" if mmap else None)
        self.labels = load_term_matrix(folder / "labels.npz")
        self.train_ids = self.labels.proteins
        roots = folder / "root_columns.npy"
        self.root_col = load_npy(roots) if roots.is_file() else None
        return self
