"""Max-propagation of scores (cafaeval's prop='max'): each term takes the max of itself and its descendants.

Instead of expanding every score to all its ancestors (nnz x depth entries, then a sort), it works on a
dense (proteins x U) block, U = the ancestor closure of the columns in use: terms are grouped by height
(longest path down to a leaf of U), and each level takes, per parent, the max over its direct children
with one gather and one `np.maximum.reduceat`. Work per block is O(rows x edges of U); scores are
non-negative (a zero is no prediction). `Ontology.propagate_max` and the evaluator both use this.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from cafa_mlflow.go.ontology import Ontology

MAX_CELLS = 1 << 24  # dense block size bound (float32 cells: 64 MiB)
MAX_PLANS = 4  # plans cached per ontology (one per vocabulary in use: evaluator, ensemble, ...)


@dataclass
class Plan:
    """Closure U (ontology columns, grouped by aspect), each aspect's slice of U, and per level
    (children, reduceat starts, parents) as positions in U."""

    columns: np.ndarray
    slices: dict[str, slice]
    levels: list[tuple[np.ndarray, np.ndarray, np.ndarray]]

    @property
    def block_rows(self) -> int:
        return max(1, MAX_CELLS // max(len(self.columns), 1))


class MaxPropagator:
    """Max-propagation of CSR score matrices over one ontology; plans are cached per column closure."""

    def __init__(self, ontology: Ontology) -> None:
        self.ontology = ontology
        self._plans: OrderedDict[bytes, Plan] = OrderedDict()

    def plan(self, used_columns: np.ndarray) -> Plan:
        """Plan for score matrices whose nonzero columns are (a subset of) `used_columns`."""
        anc = self.ontology.ancestors
        cols = np.unique(np.asarray(used_columns, dtype=np.int64))
        closure = np.unique(anc[cols].indices) if len(cols) else cols
        key = closure.tobytes()
        if key in self._plans:
            self._plans.move_to_end(key)
        else:
            self._plans[key] = _make_plan(self.ontology, closure)
            while len(self._plans) > MAX_PLANS:
                self._plans.popitem(last=False)
        return self._plans[key]

    def __call__(self, scores: sp.spmatrix, block_rows: int = 4096) -> sp.csr_matrix:
        """N x T scores over the ontology's terms -> propagated N x T float32 CSR (canonical).
        Repeated cells keep their max; stored zeros are no prediction."""
        scores = sp.csr_matrix(scores, dtype=np.float32)
        n_terms = len(self.ontology)
        if scores.shape[1] != n_terms:
            raise ValueError(f"scores have {scores.shape[1]} columns, the ontology has {n_terms} terms.")
        plan = self.plan(np.unique(scores.indices))
        local = local_positions(plan, n_terms)
        step = max(1, min(block_rows, plan.block_rows))
        counts, indices, data = [], [], []
        for start in range(0, scores.shape[0], step):
            block = scores[start : start + step]
            coo = block.tocoo()
            dense = self.propagate_cells(
                coo.row, local[coo.col], coo.data, block.shape[0], plan, unique=block.has_canonical_format
            )
            rows, cols = np.nonzero(dense)
            counts.append(np.bincount(rows, minlength=block.shape[0]))
            indices.append(plan.columns[cols])
            data.append(dense[rows, cols])
        indptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))]) if counts else np.zeros(1, np.int64)
        out = sp.csr_matrix(
            (
                np.concatenate(data) if data else np.zeros(0, np.float32),
                np.concatenate(indices) if indices else np.zeros(0, np.int64),
                indptr,
            ),
            shape=scores.shape,
            dtype=np.float32,
        )
        out.sort_indices()
        return out

    def propagate_cells(
        self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n_rows: int, plan: Plan, unique: bool = True
    ) -> np.ndarray:
        """Propagated scores as a dense (n_rows x U) float32 array, columns in `plan.columns` order, from
        (row, position in U, score) cells; `unique=False` when a cell can repeat (it keeps its max).
        n_rows should be at most plan.block_rows."""
        dense = np.zeros((n_rows, len(plan.columns)), dtype=np.float32)
        if unique:
            dense[rows, cols] = vals
        else:
            np.maximum.at(dense, (rows, cols), vals)
        for children, starts, parents in plan.levels:
            best = np.maximum.reduceat(dense[:, children], starts, axis=1)
            np.maximum(dense[:, parents], best, out=best)
            dense[:, parents] = best
        return dense


def local_positions(plan: Plan, n_terms: int) -> np.ndarray:
    """Position in U of every ontology column (-1 outside U)."""
    local = np.full(n_terms, -1, dtype=np.int64)
    local[plan.columns] = np.arange(len(plan.columns))
    return local


def _make_plan(ontology: Ontology, closure: np.ndarray) -> Plan:
    aspect = ontology.aspect[closure]
    names = [a for a in ontology.aspects if a in set(aspect.tolist())]
    code = np.array([names.index(a) for a in aspect], dtype=np.int64)
    order = np.lexsort((closure, code))
    closure, code = closure[order], code[order]
    bounds = np.searchsorted(code, np.arange(len(names) + 1))
    slices = {a: slice(int(bounds[i]), int(bounds[i + 1])) for i, a in enumerate(names)}
    sub = ontology.parents[closure][:, closure].tocoo()  # [child, parent] within U (U is closed upwards)
    child, parent = sub.row.astype(np.int64), sub.col.astype(np.int64)
    height = np.zeros(len(closure), dtype=np.int64)
    while len(child):  # longest path from a leaf; at most depth-of-GO rounds
        new = height.copy()
        np.maximum.at(new, parent, height[child] + 1)
        if np.array_equal(new, height):
            break
        height = new
    levels = []
    for h in range(1, int(height.max(initial=0)) + 1):
        at = np.flatnonzero(height[parent] == h)
        at = at[np.argsort(parent[at], kind="stable")]
        kids, pars = child[at], parent[at]
        starts = np.flatnonzero(np.r_[True, pars[1:] != pars[:-1]])
        levels.append((kids, starts, pars[starts]))
    return Plan(closure, slices, levels)
