"""Ensembles of member predictions: per-aspect weights fitted on held-out member predictions (out-of-fold or
validation); GO-consistency, the per-protein term cap and rounding come after (go/finalize.py).

Weight search (`fit_weights`): the CAFA metric of one aspect depends only on that aspect's columns, so
one evaluation of a candidate prediction scores every aspect at once, and each aspect may even use its
own candidate weights inside the same prediction. Two searches over the simplex {w >= 0, sum w = 1}:
- "grid": every point of the simplex grid with spacing `step` (21 points for 2 members at 0.05, 231
  for 3, 1,771 for 4); exact on the grid, cost C(m - 1 + 1/step, m - 1) evaluations.
- "coordinate": from equal weights, repeatedly move `step` of weight from one member to another where
  that raises the aspect's score (m(m-1) evaluations per round), until no move helps.
- "line": "coordinate" whose winning moves are repeated at once while they help (one evaluation a step), so
  a weight travels several steps per round of m(m-1) evaluations.
"auto" takes the grid when it has at most `max_grid_points` points, else coordinate ascent.
Ties keep the earlier candidate (grid: lexicographic order; coordinate: the current weights).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from math import comb
from typing import Any

import numpy as np
import scipy.sparse as sp

from cafa_mlflow.errors import ConfigError
from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.predictors.base import term_aspects
from cafa_mlflow.predictors.combine.candidates import AlignedMembers, AspectScores

log = logging.getLogger(__name__)
METHODS = ("auto", "grid", "coordinate", "line")
Weights = Mapping[str, Mapping[str, float]]  # aspect -> member -> weight


def align(
    members: Mapping[str, TermMatrix], proteins: Sequence[str] | None = None
) -> tuple[list[str], list[str], dict[str, sp.csr_matrix]]:
    """Members over shared rows and columns: `proteins` (default: union, first seen first) x union of terms."""
    if not members:
        raise ConfigError("an ensemble needs at least one member prediction.")
    if proteins is None:
        proteins = list(dict.fromkeys(p for tm in members.values() for p in tm.proteins))
    terms = list(dict.fromkeys(t for tm in members.values() for t in tm.terms))
    mats = {name: tm.reindex(proteins=list(proteins), terms=terms).matrix for name, tm in members.items()}
    return list(proteins), terms, mats


def _column_weights(names: Sequence[str], weights: Mapping[str, Any], aspects: np.ndarray | None) -> np.ndarray:
    """members x terms weight array from flat {member: w} or per-aspect {aspect: {member: w}} weights."""
    flat = all(not isinstance(v, Mapping) for v in weights.values())
    unknown = set(weights) - set(names) if flat else {m for w in weights.values() for m in w} - set(names)
    if unknown:
        raise ConfigError(f"weights name unknown members {sorted(unknown)}; members are {list(names)}.")
    if flat:
        return np.array([[float(weights.get(m, 0.0))] for m in names])  # broadcasts over terms
    if aspects is None:
        raise ConfigError("per-aspect weights need the aspect of each term (pass the ontology).")
    out = np.zeros((len(names), len(aspects)))
    for aspect, per_member in weights.items():
        cols = aspects == aspect
        for i, m in enumerate(names):
            out[i, cols] = float(per_member.get(m, 0.0))
    return out


def _weighted_sum(names: Sequence[str], mats: Mapping[str, sp.csr_matrix], col_w: np.ndarray) -> sp.csr_matrix:
    total = None
    for i, name in enumerate(names):
        m = mats[name]
        w = np.broadcast_to(col_w[i], m.shape[1:])
        if not w.any():
            continue
        scaled = m.copy()
        scaled.data = scaled.data * w[scaled.indices].astype(np.float32)
        total = scaled if total is None else total + scaled
    if total is None:
        return sp.csr_matrix(next(iter(mats.values())).shape, dtype=np.float32)
    total.eliminate_zeros()
    return total.tocsr()


def combine(
    members: Mapping[str, TermMatrix],
    weights: Mapping[str, Any],
    aspect_of: Any = None,
    proteins: Sequence[str] | None = None,
) -> TermMatrix:
    """Weighted sum of member scores over the union of terms (absent entries count as 0).

    weights: {aspect: {member: w}} (needs aspect_of: Ontology or {term: aspect}) or flat {member: w}.
    A member missing from an aspect's weights gets weight 0 there."""
    proteins, terms, mats = align(members, proteins)
    aspects = term_aspects(terms, aspect_of) if aspect_of is not None else None
    names = list(mats)
    return TermMatrix(proteins, terms, _weighted_sum(names, mats, _column_weights(names, weights, aspects)))


def simplex_grid(n_members: int, step: float) -> np.ndarray:
    """All weight vectors with entries in multiples of `step` summing to 1 (lexicographic order)."""
    n = round(1 / step)
    if n < 1 or abs(n * step - 1) > 1e-9:
        raise ConfigError(f"ensemble.step={step} must divide 1 (e.g. 0.05, 0.1, 0.25).")
    points = [c for c in itertools.product(range(n + 1), repeat=n_members - 1) if sum(c) <= n]
    return np.array([[*c, n - sum(c)] for c in points], dtype=float) / n


def fit_weights(
    members: Mapping[str, TermMatrix],
    truth: Any,
    metric: Callable[[Any, TermMatrix], Mapping],
    aspect_of: Any,
    step: float = 0.05,
    method: str = "auto",
    key: str = "f_w",
    max_grid_points: int = 300,
    max_rounds: int = 100,
    trace: list | None = None,
    transform: Callable[[TermMatrix], TermMatrix] | None = None,
) -> dict[str, dict[str, float]]:
    """Per-aspect member weights on the simplex maximising `metric(truth, combined)[aspect][key]`.

    members: validation predictions; metric: e.g. `lambda t, p: evaluate(ontology, t, p, ia, 0.01)`;
    transform: applied to each candidate before scoring, e.g. the submission's rounding (rounded scores
    can land exactly on a threshold, so the weights should be chosen on what will be submitted);
    trace, if a list, receives one {"weights": {aspect: {member: w}}, "scores": {aspect: s}} per evaluation."""
    if method not in METHODS:
        raise ConfigError(f"ensemble.search={method!r}: use one of {', '.join(METHODS)}.")
    proteins = list(truth.proteins) if hasattr(truth, "proteins") else None
    proteins, terms, mats = align(members, proteins)
    names = list(mats)
    aspects = term_aspects(terms, aspect_of)
    present = list(dict.fromkeys(aspects.tolist()))
    aligned = AlignedMembers(names, mats)

    def score(per_aspect: dict[str, np.ndarray]) -> dict[str, float]:
        w = {a: dict(zip(names, map(float, v))) for a, v in per_aspect.items()}
        pred = TermMatrix(proteins, terms, aligned.weighted_sum(_column_weights(names, w, aspects)))
        result = metric(truth, pred if transform is None else transform(pred))
        return {a: float(result[a][key]) for a in per_aspect if a in result and result[a].get(key) is not None}

    scores_of = AspectScores(score, len(names))

    def evaluate(per_aspect: dict[str, np.ndarray]) -> dict[str, float]:
        scores = scores_of(per_aspect)
        if trace is not None:
            trace.append(
                {"weights": {a: dict(zip(names, map(float, v))) for a, v in per_aspect.items()}, "scores": scores}
            )
        return scores

    if len(names) == 1:
        return {a: {names[0]: 1.0} for a in present}
    n_grid = comb(len(names) - 1 + round(1 / step), len(names) - 1)
    if method == "grid" or (method == "auto" and n_grid <= max_grid_points):
        best = _grid_search(evaluate, simplex_grid(len(names), step), present)
    else:
        best = _coordinate_ascent(evaluate, len(names), step, present, max_rounds, repeat=method == "line")
    log.info("weight search: %d scorer calls (each scores only aspects with new weights)", scores_of.calls)
    return {a: dict(zip(names, np.round(best[a], 10).tolist())) for a in present}


def _grid_search(evaluate, grid: np.ndarray, aspects: list[str]) -> dict[str, np.ndarray]:
    best = {a: (-np.inf, grid[0]) for a in aspects}
    for point in grid:
        scores = evaluate({a: point for a in aspects})
        for a, s in scores.items():
            if s > best[a][0]:
                best[a] = (s, point)
    return {a: w for a, (_, w) in best.items()}


def _coordinate_ascent(
    evaluate, n_members: int, step: float, aspects: list[str], max_rounds: int, repeat: bool = False
) -> dict[str, np.ndarray]:
    n = round(1 / step)
    start = np.full(n_members, n // n_members)
    start[: n - start.sum()] += 1  # equal split in grid units
    current = {a: start.astype(float) for a in aspects}
    base = evaluate({a: v / n for a, v in current.items()})
    score = {a: base.get(a, -np.inf) for a in aspects}
    moves = [(i, j) for i in range(n_members) for j in range(n_members) if i != j]
    for _ in range(max_rounds):
        best = dict(score)
        best_w = dict(current)
        for i, j in moves:
            cand = {}
            for a, v in current.items():
                c = v.copy()
                if c[i] >= 1:
                    c[i] -= 1
                    c[j] += 1
                cand[a] = c
            for a, s in evaluate({a: v / n for a, v in cand.items()}).items():
                if s > best[a] and not np.array_equal(cand[a], current[a]):
                    best[a], best_w[a] = s, cand[a]
        moved = {a: best_w[a] - current[a] for a in aspects if not np.array_equal(best_w[a], current[a])}
        if not moved:
            break
        current, score = best_w, best
        if repeat:
            current, score = _repeat_moves(evaluate, current, score, moved, n)
    return {a: v / n for a, v in current.items()}


def _repeat_moves(
    evaluate, current: dict[str, np.ndarray], score: dict[str, float], moved: dict[str, np.ndarray], n: int
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Line search after a round ("line"): each aspect's winning move is made again while it raises the
    aspect's score, all aspects in one evaluation per step (aspects that stopped are not scored again)."""
    current, score = dict(current), dict(score)
    while moved:
        cand = {a: current[a] + moved.get(a, 0) for a in current}
        moved = {a: d for a, d in moved.items() if cand[a].min() >= 0}
        if not moved:
            break
        scores = evaluate({a: (cand[a] if a in moved else current[a]) / n for a in current})
        moved = {a: d for a, d in moved.items() if scores.get(a, -np.inf) > score[a]}
        for a in moved:
            current[a], score[a] = cand[a], scores[a]
    return current, score
