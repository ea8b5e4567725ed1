"""DVC-facing outputs: one small headline metrics file (`dvc metrics show/diff`) and the plot data files
(`dvc plots show`): precision-recall curves per aspect and the training curves per epoch.

Everything sits beside evaluate's JSON (outputs/metrics/ by default):
  headline.json            {"ensemble": {"BPO": {"f_w", "f", "s"}, ..., "f_w_mean", "f_mean"}, "members": {name: f_w_mean}}
  plots/pr_<aspect>.csv    threshold, recall, precision (unweighted) and recall_w, precision_w (IA-weighted)
and the neural member's <train.out>/history.csv (epoch, train_loss, val_loss, val_f_w_mean, lr).
`python -m cafa_mlflow.evaluation.reports` (the `report` DVC stage) writes headline.json and the PR curves of the ensemble.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cafa_mlflow.go.ontology import ASPECTS
from cafa_mlflow.io.text import atomic_write, write_json

HEADLINE_FILE = "headline.json"
PLOTS_DIR = "plots"
FINAL = "ensemble"  # the prediction whose numbers head the file and whose PR curves are drawn
HEADLINE_MEASURES = ("f_w", "f", "s")
HISTORY_COLUMNS = ("train_loss", "val_loss", "val_f_w_mean", "lr")


def headline(results: Mapping[str, Mapping], final: str = FINAL) -> dict:
    """A few numbers from evaluate's {name: result}: per aspect F-max (weighted, plain) and S-min of `final`,
    its means, and each other prediction's weighted F-max mean."""
    if final not in results:
        raise KeyError(f"no {final!r} among the evaluated predictions ({', '.join(results)})")
    result = results[final]
    top: dict = {a: {m: _round(result[a][m]) for m in HEADLINE_MEASURES} for a in ASPECTS if a in result}
    top.update({"f_w_mean": _round(result["mean_f_w"]), "f_mean": _round(result["mean_f"])})
    members = {name: _round(r["mean_f_w"]) for name, r in results.items() if name != final}
    return {final: top, "members": members}


def _round(value: float) -> float | None:
    value = float(value)
    return None if value != value else round(value, 4)


def write_headline(results: Mapping[str, Mapping], path: str | Path, final: str = FINAL) -> Path:
    write_json(path, headline(results, final), indent=2)
    return Path(path)


def pr_table(curves: Mapping[str, np.ndarray], curves_w: Mapping[str, np.ndarray], tau: np.ndarray) -> pd.DataFrame:
    """One aspect's curves (Scorer.curves output) as rows per threshold; thresholds with no prediction
    (precision undefined) are left out."""
    frame = pd.DataFrame(
        {
            "threshold": np.round(tau, 6),
            "recall": curves["rc"],
            "precision": curves["pr"],
            "recall_w": curves_w["rc"],
            "precision_w": curves_w["pr"],
        }
    )
    return frame[frame["precision"].notna() & (frame["recall"] > 0)].round(6).reset_index(drop=True)


def write_pr_curves(per_aspect: Mapping[str, tuple], tau: np.ndarray, folder: str | Path) -> list[Path]:
    """Write plots/pr_<aspect>.csv for each aspect of Scorer.curves(pred); return the paths."""
    paths = []
    for aspect, (curves, curves_w) in per_aspect.items():
        path = Path(folder) / f"pr_{aspect}.csv"
        with atomic_write(path) as out:
            pr_table(curves, curves_w, tau).to_csv(out, index=False)
        paths.append(path)
    return paths


def write_history(history: Sequence[Mapping[str, float]], path: str | Path) -> Path:
    """The training curves (NeuralPredictor.result.history: one dict per epoch) as epoch + HISTORY_COLUMNS."""
    frame = pd.DataFrame(list(history))
    frame.insert(0, "epoch", np.arange(1, len(frame) + 1))
    columns = ["epoch", *[c for c in HISTORY_COLUMNS if c in frame]]
    with atomic_write(path) as out:
        frame[columns].to_csv(out, index=False)
    return Path(path)


def write_reports(
    out_json: str | Path, results: Mapping[str, Mapping], curves: Mapping | None, tau: np.ndarray
) -> list[Path]:
    """headline.json (from evaluate's results) and plots/pr_<aspect>.csv (`curves`: the submitted model's
    Scorer.curves on the test set, if it was scored) beside `out_json`, for `dvc metrics` and `dvc plots`."""
    metrics_dir = Path(out_json).parent
    paths = [write_headline(results, metrics_dir / HEADLINE_FILE)]
    if curves is not None:
        paths += write_pr_curves(curves, tau, metrics_dir / PLOTS_DIR)
    return paths
