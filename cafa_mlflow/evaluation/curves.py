"""Threshold curves of the CAFA metrics, computed the way cafaeval 1.3.0 does (norm='cafa').

Every nonzero (propagated) score is turned into the number of thresholds it passes, `kmax`
(tau_0..tau_{kmax-1} <= score). Per protein, one bincount over (protein, kmax) and a reverse cumulative
sum give the predicted (and true-positive) weight at every threshold at once: no loop per threshold
or per protein. Sums are accumulated over blocks of proteins, then normalised once.
"""

from __future__ import annotations

import numpy as np

SUMS = ("n", "tp", "fp", "fn", "pr", "rc")  # raw per-threshold sums, as in cafaeval's confusion matrix
SNAP_TOLERANCE = 1e-6  # scores this close to a threshold get their decimal value back (see passes)
MAX_DECIMALS = 9


def thresholds(th_step: float) -> np.ndarray:
    """cafaeval's grid: np.arange(th_step, 1, th_step) (float64; e.g. tau[6] is 0.07 plus float noise)."""
    return np.arange(th_step, 1, th_step)


def passes(scores32: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """How many thresholds each float32 score reaches, #{k : tau_k <= score}, as cafaeval decides it.

    cafaeval compares float64 scores parsed from text with float64 thresholds, so "0.07" and the
    threshold 0.07 tie exactly as float64 values decide. A float32 score is within 1e-7 (relative) of its
    decimal, so only scores within SNAP_TOLERANCE of a threshold can compare differently; those are
    replaced by their shortest decimal (<= 9 places) that round-trips to the same float32, as float64."""
    x = np.asarray(scores32, dtype=np.float32)
    n_thr = len(tau)
    if not n_thr or not len(x):
        return np.zeros(len(x), dtype=np.int32)
    step = (tau[-1] - tau[0]) / (n_thr - 1) if n_thr > 1 else tau[0]
    tau32 = tau.astype(np.float32)
    nearest = np.rint((x - np.float32(tau[0])) * np.float32(1 / step))
    nearest = np.fmin(np.fmax(nearest, 0, out=nearest), n_thr - 1, out=nearest).astype(np.int32)  # NaN -> 0
    # float32 arithmetic is exact enough away from the thresholds (|x - tau| >= SNAP_TOLERANCE >> 1e-7)
    count = nearest + (tau32[nearest] <= x)
    near = np.flatnonzero(np.abs(x - tau32[nearest]) < SNAP_TOLERANCE)
    if len(near):  # every threshold below `nearest` is passed, every one above is not (>= step/2 away)
        count[near] = nearest[near] + (tau[nearest[near]] <= shortest_decimal(x[near]))
    return count.astype(np.int32, copy=False)


def shortest_decimal(vals: np.ndarray) -> np.ndarray:
    """float64 value of the shortest decimal (<= MAX_DECIMALS places) that rounds to each float32."""
    out = vals.astype(np.float64)
    todo = np.ones(len(vals), dtype=bool)
    for decimals in range(1, MAX_DECIMALS + 1):
        r = np.round(vals.astype(np.float64), decimals)  # rint(x*10^d)/10^d: the float64 nearest the decimal
        hit = todo & (r.astype(np.float32) == vals)
        out[hit] = r[hit]
        todo &= ~hit
        if not todo.any():
            break
    return out


def new_sums(n_thr: int) -> np.ndarray:
    return np.zeros((len(SUMS), n_thr), dtype=np.float64)


def accumulate(
    sums: np.ndarray, rows: np.ndarray, kmax: np.ndarray, weight: np.ndarray, is_tp: np.ndarray, gt: np.ndarray
) -> None:
    """Add one block of proteins to `sums` (len(SUMS) x n_thr), in place.

    rows: block-local protein index of each predicted entry (only entries that count: scored >= tau_0,
    weight > 0, protein evaluated in this aspect); kmax: thresholds passed; weight: the term's weight
    (1 or IA); is_tp: the term is in the protein's (propagated) truth; gt: per block protein, the total
    weight of its truth terms (0 for proteins not evaluated)."""
    n_rows, n_thr = len(gt), sums.shape[1]
    width = n_thr + 1
    keys = rows.astype(np.int64) * width + kmax
    size = n_rows * width

    def top_down(h: np.ndarray) -> np.ndarray:  # [p, k] = sum of bins > k, i.e. entries reaching tau_k
        h = h.astype(np.float64, copy=False).reshape(n_rows, width)
        return np.cumsum(h[:, ::-1], axis=1)[:, ::-1][:, 1:]

    count = top_down(np.bincount(keys, minlength=size))
    pred = top_down(np.bincount(keys, weights=weight, minlength=size))
    tp = top_down(np.bincount(keys[is_tp], weights=weight[is_tp], minlength=size))
    has_pred = count > 0
    sums[0] += has_pred.sum(axis=0)
    sums[1] += tp.sum(axis=0)
    sums[2] += (pred - tp).sum(axis=0)
    sums[3] += (gt[:, None] - tp).sum(axis=0)
    sums[4] += np.divide(tp, pred, out=np.zeros_like(tp), where=has_pred).sum(axis=0)
    has_gt = gt > 0
    sums[5] += (tp[has_gt] / gt[has_gt, None]).sum(axis=0)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num, dtype=float), where=den > 0)


def _f(pr: np.ndarray, rc: np.ndarray) -> np.ndarray:
    return _ratio(2 * pr * rc, pr + rc)


def normalize(sums: np.ndarray, n_proteins: int) -> dict[str, np.ndarray]:
    """Raw sums -> per-threshold pr, rc, cov, mi, ru, f, s and micro averages (cafaeval's `normalize`)."""
    n, tp, fp, fn, pr, rc = sums
    ne = np.full_like(n, float(n_proteins))
    tp, fp, fn, rc = _ratio(tp, ne), _ratio(fp, ne), _ratio(fn, ne), _ratio(rc, ne)
    pr = _ratio(pr, n)
    out = {
        "n": n,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "pr": pr,
        "rc": rc,
        "cov": n / n_proteins,
        "mi": fp,
        "ru": fn,
        "f": _f(pr, rc),
        "s": np.sqrt(fn**2 + fp**2),
    }
    out["pr_micro"] = _ratio(tp, tp + fp)
    out["rc_micro"] = _ratio(tp, tp + fn)
    out["f_micro"] = _f(out["pr_micro"], out["rc_micro"])
    return out


def best(
    curves: dict[str, np.ndarray], curves_w: dict[str, np.ndarray], tau: np.ndarray, n_proteins: int
) -> dict[str, float]:
    """cafaeval's best rows: thresholds with (unweighted) coverage > 0 only; F by first max, S by first min."""
    valid = np.flatnonzero(curves["cov"] > 0)
    if not len(valid):
        return empty_result(n_proteins)
    out: dict[str, float] = {}

    def pick(values: np.ndarray, largest: bool = True) -> int:
        v = values[valid]
        return int(valid[np.argmax(v) if largest else np.argmin(v)])

    i = pick(curves["f"])
    out.update(
        f=curves["f"][i],
        tau=tau[i],
        pr=curves["pr"][i],
        rc=curves["rc"][i],
        cov=curves["cov"][i],
        cov_max=curves["cov"][valid].max(),
    )
    i = pick(curves_w["f"])
    out.update(
        f_w=curves_w["f"][i],
        tau_w=tau[i],
        pr_w=curves_w["pr"][i],
        rc_w=curves_w["rc"][i],
        cov_w=curves_w["cov"][i],
        cov_max_w=curves_w["cov"][valid].max(),
    )
    i = pick(curves["s"], largest=False)
    out.update(s=curves["s"][i], tau_s=tau[i], ru=curves["ru"][i], mi=curves["mi"][i])
    i = pick(curves_w["s"], largest=False)
    out.update(s_w=curves_w["s"][i], tau_s_w=tau[i], ru_w=curves_w["ru"][i], mi_w=curves_w["mi"][i])
    i = pick(curves["f_micro"])
    out.update(f_micro=curves["f_micro"][i], tau_micro=tau[i])
    i = pick(curves_w["f_micro"])
    out.update(f_micro_w=curves_w["f_micro"][i], tau_micro_w=tau[i])
    return {k: float(v) for k, v in out.items()}


RESULT_KEYS = (
    "f",
    "tau",
    "pr",
    "rc",
    "cov",
    "cov_max",
    "f_w",
    "tau_w",
    "pr_w",
    "rc_w",
    "cov_w",
    "cov_max_w",
    "s",
    "tau_s",
    "ru",
    "mi",
    "s_w",
    "tau_s_w",
    "ru_w",
    "mi_w",
    "f_micro",
    "tau_micro",
    "f_micro_w",
    "tau_micro_w",
)
ZERO_WHEN_UNCOVERED = (
    "f",
    "pr",
    "rc",
    "cov",
    "cov_max",
    "f_w",
    "pr_w",
    "rc_w",
    "cov_w",
    "cov_max_w",
    "f_micro",
    "f_micro_w",
)


def empty_result(n_proteins: int) -> dict[str, float]:
    """An aspect without truth (all NaN) or without any prediction reaching a threshold: F, precision,
    recall and coverage are 0; thresholds and S (which cafaeval does not report then) are NaN."""
    out = {k: float("nan") for k in RESULT_KEYS}
    if n_proteins:
        out.update({k: 0.0 for k in ZERO_WHEN_UNCOVERED})
    return out
