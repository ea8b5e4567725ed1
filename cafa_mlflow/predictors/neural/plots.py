"""Training figures (matplotlib, Agg): loss curves and per-aspect precision-recall curves on validation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fmax_point(pr: np.ndarray, rc: np.ndarray) -> int:
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.nan_to_num(2 * pr * rc / (pr + rc))
    return int(np.argmax(f))


def pr_figure(aspect: str, curves: dict[str, np.ndarray], curves_w: dict[str, np.ndarray]):
    """One aspect's protein-centric precision-recall curves over the CAFA thresholds (the evaluator's
    per-threshold `pr`/`rc`, unweighted and IA-weighted), F-max points marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4))
    for label, c, color in (("unweighted", curves, "C0"), ("IA-weighted", curves_w, "C1")):
        pr, rc = np.asarray(c["pr"], dtype=float), np.asarray(c["rc"], dtype=float)
        keep = np.asarray(c["cov"]) > 0 if "cov" in c else np.ones(len(pr), bool)
        ax.plot(rc[keep], pr[keep], lw=1.5, color=color, label=label)
        if keep.any():
            k = np.flatnonzero(keep)[_fmax_point(pr[keep], rc[keep])]
            ax.plot(rc[k], pr[k], "o", color=color)
    ax.set(xlabel="recall", ylabel="precision", title=f"{aspect} (validation)", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def loss_figure(history: Sequence[dict], best_epoch: int):
    """train_loss and val_loss per epoch; the restored (best) epoch is marked."""
    plt = _pyplot()
    epochs = np.arange(1, len(history) + 1)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key in ("train_loss", "val_loss"):
        ax.plot(epochs, [h[key] for h in history], marker=".", label=key)
    if best_epoch:
        ax.axvline(best_epoch, color="grey", ls="--", lw=1, label=f"best epoch {best_epoch}")
    ax.set(xlabel="epoch", ylabel="loss", title="training")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
