"""What the weight search evaluates again and again, made cheap (predictors/combine/weights.py).

- `AlignedMembers`: the members' scores on one sparsity pattern (the union of theirs), so a candidate's
  weighted sum is a few vector operations instead of sparse additions; equal to `weights._weighted_sum`
  value for value (each member's product in its own dtype, added in member order; absent cells add 0).
- `AspectScores`: a candidate's score in one aspect depends only on that aspect's weights (an aspect's
  columns, propagation within a namespace, truth per aspect), so scores are remembered per (aspect,
  weights); an evaluation scores only the aspects whose weights are new, the others get weight 0 there
  (their columns drop out of the prediction, so the scorer does less work) and their remembered score.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

Evaluate = Callable[[dict[str, np.ndarray]], dict[str, float]]


class AlignedMembers:
    """Members' score matrices (same shape) as value vectors over the union of their nonzero cells."""

    def __init__(self, names: Sequence[str], mats: Mapping[str, sp.csr_matrix]) -> None:
        self.names = list(names)
        self.shape = next(iter(mats.values())).shape
        n_cols = self.shape[1]
        cells = {}
        for name in self.names:
            coo = sp.coo_matrix(mats[name])
            coo.sum_duplicates()
            cells[name] = (coo.row.astype(np.int64) * n_cols + coo.col, coo.data)
        keys = [k for k, _ in cells.values()]
        self.keys = np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.int64)
        self.rows, self.cols = np.divmod(self.keys, n_cols)
        self.values = []
        for key, data in cells.values():
            v = np.zeros(len(self.keys), dtype=data.dtype)
            v[np.searchsorted(self.keys, key)] = data
            self.values.append(v)

    def weighted_sum(self, col_w: np.ndarray) -> sp.csr_matrix:
        """sum_i col_w[i, term] x member_i as canonical CSR without zeros (col_w: members x terms, or x 1)."""
        total = None
        for i, values in enumerate(self.values):
            w = np.broadcast_to(col_w[i], self.shape[1:])
            if not w.any():
                continue
            scaled = values * w.astype(np.float32)[self.cols]
            total = scaled if total is None else total + scaled
        if total is None:
            return sp.csr_matrix(self.shape, dtype=np.float32)
        keep = total != 0
        indptr = np.concatenate([[0], np.cumsum(np.bincount(self.rows[keep], minlength=self.shape[0]))])
        return sp.csr_matrix((total[keep], self.cols[keep], indptr), shape=self.shape)


class AspectScores:
    """`evaluate` (per-aspect candidate weights -> per-aspect scores) with each (aspect, weights) scored once."""

    def __init__(self, score: Evaluate, n_members: int) -> None:
        self.score = score
        self.zero = np.zeros(n_members)
        self.seen: dict[tuple[str, tuple[float, ...]], float] = {}
        self.calls = 0

    def __call__(self, per_aspect: dict[str, np.ndarray]) -> dict[str, float]:
        keys = {a: (a, tuple(np.asarray(v, dtype=float).tolist())) for a, v in per_aspect.items()}
        new = [a for a in per_aspect if keys[a] not in self.seen]
        if new:
            self.calls += 1
            found = self.score({a: per_aspect[a] if a in new else self.zero for a in per_aspect})
            self.seen.update({keys[a]: found[a] for a in new if a in found})
        return {a: self.seen[keys[a]] for a in per_aspect if keys[a] in self.seen}
