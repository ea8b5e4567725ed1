"""Max-propagation of scores (cafaeval's prop='max'): each term takes the max of itself and its descendants.

Public block API (used by the evaluator and by `Ontology.propagate_max`):
- `propagation_plan(ontology, used_columns)` -> `Plan` for scores over those columns, cached per ontology;
- `propagate_block(plan, rows, positions, values, n_rows)` -> the propagated scores of one block of
  proteins as a dense term-major (U x n_rows) float32 array.

U is the ancestor closure of the columns in use, ordered by (aspect, height, column), height = longest
path down to a leaf of U, so the terms of one aspect are a contiguous slice of U. Parents are updated
level by level (all children of a level's parents are final by then), in rounds: round r of a level
takes the r-th child of every parent that has one, so a round is one vectorized gather / max / scatter
of whole rows (term-major rows are contiguous; this is several times faster than `np.maximum.reduceat`
along rows). Work per block is O(rows x edges of U). Scores are non-negative, a zero is no prediction;
any dtype works (the evaluator propagates uint8 threshold counts, 4x less memory than float32).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.sparse as sp

MAX_CELLS = 1 << 24  # dense block size bound (float32 cells: 64 MiB)
MAX_PLANS = 4  # plans cached per ontology (one per vocabulary in use: evaluator, ensemble, ...)


class Ontology(Protocol):
    """What propagation reads of an ontology (`cafa_mlflow.go.ontology.Ontology` has it); a protocol, so that
    this module does not import the ontology module, which imports it."""

    parents: sp.csr_matrix
    aspect: np.ndarray

    @property
    def ancestors(self) -> sp.csr_matrix: ...

    @property
    def aspects(self) -> list[str]: ...

    @property
    def plan_cache(self) -> PlanCache: ...

    def __len__(self) -> int: ...


@dataclass
class Plan:
    """U (ontology columns, grouped by aspect then height), each aspect's slice of U, the position in U
    of every ontology column (-1 outside U), and the rounds (parents, children as positions in U) in order."""

    columns: np.ndarray
    slices: dict[str, slice]
    positions: np.ndarray
    rounds: list[tuple[np.ndarray, np.ndarray]]

    @property
    def block_rows(self) -> int:
        """Most proteins per block so that a block stays under MAX_CELLS cells."""
        return max(1, MAX_CELLS // max(len(self.columns), 1))


class PlanCache:
    """Plans of one ontology, keyed by column closure (least recently used dropped beyond MAX_PLANS)."""

    def __init__(self, ontology: Ontology) -> None:
        self.ontology = ontology
        self._plans: OrderedDict[bytes, Plan] = OrderedDict()

    def get(self, used_columns: np.ndarray) -> Plan:
        cols = np.unique(np.asarray(used_columns, dtype=np.int64))
        closure = np.unique(self.ontology.ancestors[cols].indices) if len(cols) else cols
        key = closure.tobytes()
        if key in self._plans:
            self._plans.move_to_end(key)
        else:
            self._plans[key] = _make_plan(self.ontology, closure)
            while len(self._plans) > MAX_PLANS:
                self._plans.popitem(last=False)
        return self._plans[key]


def propagation_plan(ontology: Ontology, used_columns: np.ndarray) -> Plan:
    """Plan for score matrices whose nonzero columns are (a subset of) `used_columns` (cached)."""
    return ontology.plan_cache.get(used_columns)


def propagate_block(
    plan: Plan, rows: np.ndarray, positions: np.ndarray, values: np.ndarray, n_rows: int, unique: bool = True
) -> np.ndarray:
    """Propagated scores of one block as a dense term-major (U x n_rows) array of `values`' dtype, U in
    `plan.columns` order, from (row in block, position in U, score) cells; `unique=False` when a cell can
    repeat (it keeps its max). Keep n_rows at most `plan.block_rows` to bound memory."""
    dense = np.zeros((len(plan.columns), n_rows), dtype=values.dtype)
    if unique:
        dense[positions, rows] = values
    else:
        np.maximum.at(dense, (positions, rows), values)
    for parents, children in plan.rounds:
        dense[parents] = np.maximum(dense[parents], dense[children])
    return dense


def propagate_max(ontology: Ontology, scores: sp.spmatrix, block_rows: int = 4096) -> sp.csr_matrix:
    """N x T scores over the ontology's terms -> propagated N x T float32 CSR (canonical).
    Repeated cells keep their max; stored zeros are no prediction."""
    scores = sp.csr_matrix(scores, dtype=np.float32)
    n_terms = len(ontology)
    if scores.shape[1] != n_terms:
        raise ValueError(f"scores have {scores.shape[1]} columns, the ontology has {n_terms} terms.")
    plan = propagation_plan(ontology, np.unique(scores.indices))
    step = max(1, min(block_rows, plan.block_rows))
    parts = []
    for start in range(0, scores.shape[0], step):
        block = scores[start : start + step]
        coo = block.tocoo()
        dense = propagate_block(
            plan, coo.row, plan.positions[coo.col], coo.data, block.shape[0], unique=block.has_canonical_format
        )
        pos, rows = np.nonzero(dense)
        parts.append(sp.csr_matrix((dense[pos, rows], (rows, plan.columns[pos])), shape=(block.shape[0], n_terms)))
    out = sp.vstack(parts, format="csr", dtype=np.float32) if parts else sp.csr_matrix(scores.shape, dtype=np.float32)
    out.sort_indices()
    return out


def _make_plan(ontology: Ontology, closure: np.ndarray) -> Plan:
    sub = ontology.parents[closure][:, closure].tocoo()  # [child, parent] within U (U is closed upwards)
    child, parent = sub.row.astype(np.int64), sub.col.astype(np.int64)
    height = np.zeros(len(closure), dtype=np.int64)
    for _ in range(len(closure) + 1):  # longest path from a leaf; at most depth-of-ontology rounds (acyclic)
        new = height.copy()
        np.maximum.at(new, parent, height[child] + 1)
        if np.array_equal(new, height):
            break
        height = new
    names = [a for a in ontology.aspects if a in set(ontology.aspect[closure].tolist())]
    code = _codes(ontology.aspect[closure], names)
    order = np.lexsort((closure, height, code))
    closure, code, height = closure[order], code[order], height[order]
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    child, parent = rank[child], rank[parent]
    bounds = np.searchsorted(code, np.arange(len(names) + 1))
    slices = {a: slice(int(bounds[i]), int(bounds[i + 1])) for i, a in enumerate(names)}
    by_parent = np.lexsort((child, parent))
    child, parent = child[by_parent], parent[by_parent]
    first = np.searchsorted(parent, parent)  # edges of one parent are contiguous
    rank = np.arange(len(parent)) - first  # this edge is the parent's rank-th child
    level = (code * (int(height.max(initial=0)) + 1) + height)[parent]  # (aspect, height) of the parent
    order = np.lexsort((rank, level))
    keys = np.stack([level[order], rank[order]])
    cuts = np.flatnonzero(np.any(keys[:, 1:] != keys[:, :-1], axis=0)) + 1
    rounds = [(parent[e], child[e]) for e in np.split(order, cuts) if len(e)]
    positions = np.full(len(ontology), -1, dtype=np.int64)
    positions[closure] = np.arange(len(closure))
    return Plan(closure, slices, positions, rounds)


def _codes(values: np.ndarray, names: list[str]) -> np.ndarray:
    """Index of each value in `names`."""
    lookup = {name: i for i, name in enumerate(names)}
    return np.fromiter((lookup[v] for v in values.tolist()), dtype=np.int64, count=len(values))
