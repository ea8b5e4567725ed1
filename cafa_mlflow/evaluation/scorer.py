"""CAFA evaluation: F-max, IA-weighted F-max, S-min per aspect, identical to cafaeval 1.3.0
(`cafa_eval(..., prop='max', norm='cafa', th_step=0.01)`, orphans kept) on the same input.

What cafaeval does, and so does this module:
- Truth terms are mapped to primary ids (alt_ids), obsolete/unknown ones dropped, then propagated to all
  ancestors (is_a + part_of within a namespace). A protein is evaluated in an aspect when it has at least
  one truth term there; the others are ignored in that aspect.
- Predictions for proteins not evaluated in an aspect are ignored; unknown terms are dropped; repeated
  (protein, term) pairs keep their max; scores are max-propagated (each term gets the max of itself and
  its descendants). An evaluated protein without predictions scores as all zeros.
- Thresholds are np.arange(th_step, 1, th_step); a term is predicted at tau when its score >= tau.
- Unweighted metrics use every term; weighted ones only terms with IA > 0 (missing, zero, NaN or infinite
  IA -> left out), each weighted by its IA. Precision is averaged over the proteins with a prediction at
  tau (weighted: a prediction with IA > 0), recall and everything else over all evaluated proteins.
- Best thresholds: only thresholds with (unweighted) coverage > 0; F by the first max (lowest tau), S by
  the first min. `s` is cafaeval's S-min (unweighted, term counts), `s_w` the IA-weighted S-min.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cafa_mlflow.evaluation.curves import accumulate, best, empty_result, new_sums, normalize, passes, thresholds
from cafa_mlflow.evaluation.truth import ia_weights, read_truth, warn_missing_ia
from cafa_mlflow.go.labels import TermMatrix, max_csr
from cafa_mlflow.go.ontology import ASPECTS, Ontology
from cafa_mlflow.go.propagate import Plan, propagate_block, propagation_plan

__all__ = ["Scorer", "evaluate_predictions", "f1_at_thresholds", "flat_metrics", "ia_weights", "read_truth"]
BLOCK_ROWS = 4096  # proteins per block: bounds propagated scores and per-threshold tables in memory
MAX_TABLE_CELLS = 1 << 22  # proteins x thresholds per block (small th_step -> fewer proteins per block)
PASS_CHUNK = 1 << 24  # scores turned into threshold counts at a time (a whole 224k-protein prediction: ~4 GB more)


class Scorer:
    """Truth prepared once (propagated, per-aspect totals); `scorer(pred)` evaluates a prediction."""

    def __init__(
        self,
        ontology: Ontology,
        truth: TermMatrix,
        ia: Mapping[str, float] | None = None,
        th_step: float = 0.01,
        block_rows: int = BLOCK_ROWS,
    ) -> None:
        self.ontology = ontology
        self.th_step = th_step
        self.tau = thresholds(th_step)
        self.block_rows = block_rows
        self.proteins = list(truth.proteins)
        self._row_index = pd.Index(self.proteins)
        n, n_terms = len(self.proteins), len(ontology)
        cols = _term_columns(truth.terms, ontology)
        raw = _remap_max(sp.csr_matrix(truth.matrix > 0, dtype=np.float32), np.arange(n), cols, (n, n_terms))
        self.truth = ontology.propagate(raw).astype(bool).tocsr()
        self.truth.sort_indices()
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.truth.indptr))
        self.aspects = list(ontology.aspects)
        self._aspect_code = pd.Index(self.aspects).get_indexer(ontology.aspect)
        self.weight = ia_weights(ontology, ia)
        if ia is not None:
            warn_missing_ia(ontology, self.truth, ia)
        code = self._aspect_code[self.truth.indices]
        self.gt_count, self.gt_weight, self.evaluated = {}, {}, {}
        for i, aspect in enumerate(self.aspects):
            in_aspect = code == i
            self.gt_count[aspect] = np.bincount(rows[in_aspect], minlength=n).astype(np.float64)
            self.gt_weight[aspect] = np.bincount(
                rows[in_aspect], weights=self.weight[self.truth.indices[in_aspect]], minlength=n
            )
            self.evaluated[aspect] = self.gt_count[aspect] > 0
        self._cache: dict = {}

    def n_proteins(self, aspect: str) -> int:
        return int(self.evaluated[aspect].sum())

    def __call__(self, pred: TermMatrix) -> dict:
        """Per aspect the best values (see `evaluate_predictions`); means over the aspects with truth (GO's
        three when the ontology is GO)."""
        return self.summary(self.curves(pred))

    def summary(self, per_aspect_curves: Mapping) -> dict:
        """The best values of curves from `curves()` (lets a caller that also plots them score once)."""
        result: dict = {}
        for aspect, (curves, curves_w) in per_aspect_curves.items():
            n = self.n_proteins(aspect)
            result[aspect] = {"n": float(n), **(best(curves, curves_w, self.tau, n) if n else empty_result(0))}
        scored = [
            a for a in self.aspects if (a in ASPECTS or not set(ASPECTS) & set(self.aspects)) and self.n_proteins(a)
        ]
        for key in ("f_w", "f"):
            values = [result[a][key] for a in scored]
            result[f"mean_{key}"] = float(np.mean(values)) if values else float("nan")
        return result

    def curves(self, pred: TermMatrix) -> dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
        """Per aspect, (unweighted, weighted) per-threshold metrics like cafaeval's evaluation_all.tsv."""
        n_thr = len(self.tau)
        sums = {(a, w): new_sums(n_thr) for a in self.aspects for w in (False, True)}
        for start, stop, dense, truth, plan in self._blocks(pred):
            weight = self.weight[plan.columns]
            n_rows = stop - start
            for aspect in self.aspects:
                span = plan.slices.get(aspect)
                rows = cols = np.zeros(0, np.intp)
                kmax = np.zeros(0, np.int32)
                if span is not None and span.stop > span.start:
                    flat = dense[span].ravel()  # term-major: cell = position x n_rows + row
                    cells = np.flatnonzero(flat)
                    kmax = flat[cells]
                    cols, rows = np.divmod(cells, n_rows)
                    keep = self.evaluated[aspect][start:stop][rows]  # the others are not evaluated in this aspect
                    rows, cols, kmax = rows[keep], cols[keep] + span.start, kmax[keep]
                is_tp, w = truth[cols, rows], weight[cols]
                accumulate(
                    sums[aspect, False], rows, kmax, np.ones(len(rows)), is_tp, self.gt_count[aspect][start:stop]
                )
                m = w > 0
                accumulate(sums[aspect, True], rows[m], kmax[m], w[m], is_tp[m], self.gt_weight[aspect][start:stop])
        out = {}
        for aspect in self.aspects:
            n = max(self.n_proteins(aspect), 1)
            out[aspect] = (normalize(sums[aspect, False], n), normalize(sums[aspect, True], n))
        return out

    def _blocks(self, pred: TermMatrix) -> Iterator[tuple[int, int, np.ndarray, np.ndarray, Plan]]:
        """Per block of truth proteins: start, stop, propagated threshold counts (how many thresholds the
        score passes: max-propagating them equals counting on max-propagated scores, as the count grows
        with the score) and truth as dense term-major (U x rows) arrays over the plan's columns U (the
        ancestor closure of the predicted terms); every block, also empty ones."""
        matrix, source_row, cols = self._align(pred)
        counts = np.empty(len(matrix.data), np.uint8 if len(self.tau) < 256 else np.uint16)
        for at in range(0, len(counts), PASS_CHUNK):  # per chunk: passes() holds a few int32 copies of its input
            counts[at : at + PASS_CHUNK] = passes(matrix.data[at : at + PASS_CHUNK], self.tau)
        in_use = np.flatnonzero(np.bincount(matrix.indices, minlength=matrix.shape[1]))
        plan = propagation_plan(self.ontology, cols[in_use][cols[in_use] >= 0])
        col_local = np.where(cols >= 0, plan.positions[np.maximum(cols, 0)], -1)
        unique = _injective(cols)
        step = max(1, min(self.block_rows, plan.block_rows, MAX_TABLE_CELLS // (len(self.tau) + 1)))
        for start in range(0, len(self.proteins), step):
            stop = min(start + step, len(self.proteins))
            src = source_row[start:stop]
            have = np.flatnonzero(src >= 0)
            sub = _rows_coo(matrix, counts, src[have])
            c = col_local[sub.col]
            keep = (c >= 0) & (sub.data > 0)
            dense = propagate_block(plan, have[sub.row[keep]], c[keep], sub.data[keep], stop - start, unique)
            block = self.truth[start:stop].tocoo()
            pos = plan.positions[block.col]
            truth = np.zeros(dense.shape, dtype=bool)
            truth[pos[pos >= 0], block.row[pos >= 0]] = True  # truth terms outside U cannot be hit
            yield start, stop, dense, truth, plan

    def _align(self, pred: TermMatrix) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
        """(canonical CSR scores, pred row of each truth protein or -1, ontology column of each pred column or -1)."""
        key = (tuple(pred.proteins), tuple(pred.terms))
        if self._cache.get("key") != key:
            rows = self._row_index.get_indexer(pred.proteins)
            self._cache = {
                "key": key,
                "rows": rows,
                "cols": _term_columns(pred.terms, self.ontology),
                "unique_rows": _injective(rows),
            }
        rows, cols = self._cache["rows"], self._cache["cols"]
        matrix = pred.matrix
        if not self._cache["unique_rows"] or not matrix.has_canonical_format:  # repeated proteins or cells: max
            shape = (len(self.proteins), len(self.ontology))
            matrix = _remap_max(matrix, rows, cols, shape)
            return matrix, np.arange(shape[0]), np.arange(shape[1])
        source = np.full(len(self.proteins), -1, dtype=np.int64)
        source[rows[rows >= 0]] = np.flatnonzero(rows >= 0)
        return matrix, source, cols


def evaluate_predictions(
    ontology: Ontology,
    truth: TermMatrix,
    pred: TermMatrix,
    ia: Mapping[str, float] | None = None,
    th_step: float = 0.01,
) -> dict:
    """{"BPO": {"n", "f", "tau", "pr", "rc", "cov", "f_w", "tau_w", "pr_w", "rc_w", "cov_w", "s", ...}, "CCO": ...,
    "MFO": ..., "mean_f_w", "mean_f"}. ia None = every term weighs 1 (then f_w == f)."""
    return Scorer(ontology, truth, ia, th_step)(pred)


def flat_metrics(result: Mapping, prefix: str = "") -> dict[str, float]:
    """{prefix+"f_w_BPO": .., prefix+"tau_w_BPO": .., ..., prefix+"f_w_mean": .., prefix+"f_mean": ..}."""
    flat: dict[str, float] = {}
    for key, value in result.items():
        if isinstance(value, Mapping):
            flat.update({f"{prefix}{name}_{key}": float(v) for name, v in value.items()})
        elif key.startswith("mean_"):
            flat[f"{prefix}{key[len('mean_') :]}_mean"] = float(value)
        else:
            flat[f"{prefix}{key}"] = float(value)
    return flat


def f1_at_thresholds(truth: TermMatrix, pred_binary: TermMatrix, term_aspect: Sequence[str]) -> dict[str, float]:
    """Micro and macro F1 per aspect of already thresholded predictions over truth's terms (no propagation).

    term_aspect is aligned with truth.terms; pred_binary is reindexed onto truth's proteins and terms
    (nonzero = predicted). Macro F1 averages the terms that are true or predicted at least once."""
    pred = pred_binary.reindex(truth.proteins, truth.terms).matrix > 0
    true = sp.csr_matrix(truth.matrix > 0)
    tp = np.asarray(true.multiply(pred).sum(axis=0), dtype=np.float64).ravel()
    fp = np.asarray(pred.sum(axis=0), dtype=np.float64).ravel() - tp
    fn = np.asarray(true.sum(axis=0), dtype=np.float64).ravel() - tp
    term_aspect = np.asarray(term_aspect, dtype=object)
    out: dict[str, float] = {}
    for aspect in dict.fromkeys(term_aspect.tolist()):
        m = term_aspect == aspect
        den = 2 * tp[m] + fp[m] + fn[m]
        out[f"micro_f1_{aspect}"] = float(2 * tp[m].sum() / den.sum()) if den.sum() else 0.0
        seen = den > 0
        out[f"macro_f1_{aspect}"] = float(np.mean(2 * tp[m][seen] / den[seen])) if seen.any() else 0.0
    return out


def _term_columns(terms: Sequence[str], ontology: Ontology) -> np.ndarray:
    """Ontology column of each term id (alt_ids mapped; obsolete/unknown -> -1)."""
    index = ontology.index
    return np.array([index.get(ontology.resolve(t) or "", -1) for t in terms], dtype=np.int64)


def _remap_max(matrix: sp.spmatrix, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """Move entries to new (row, col) ids (-1 = drop); entries landing on one cell keep their max."""
    coo = sp.coo_matrix(matrix)
    r, c = rows[coo.row], cols[coo.col]
    keep = (r >= 0) & (c >= 0) & (coo.data != 0)
    return max_csr(r[keep], c[keep], coo.data[keep].astype(np.float32), shape)


def _rows_coo(matrix: sp.csr_matrix, data: np.ndarray, rows: np.ndarray) -> sp.coo_matrix:
    """COO of the given rows of `matrix` with `data` (aligned with matrix.data) as values."""
    return sp.csr_matrix((data, matrix.indices, matrix.indptr), shape=matrix.shape)[rows].tocoo()


def _injective(ids: np.ndarray) -> bool:
    valid = ids[ids >= 0]
    return len(np.unique(valid)) == len(valid)
