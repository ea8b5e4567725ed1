"""DVC-facing outputs: one small headline metrics file (`dvc metrics show/diff`) and the plot data files
(`dvc plots show`): precision-recall curves per aspect and the training curves per epoch.

Everything sits beside evaluate's JSON (outputs/metrics/ by default):
  headline.json            {"ensemble": {"BPO": {"f_w", "f", "s"}, ..., "f_w_mean", "f_mean"}, "members": {name: f_w_mean}}
  plots/pr_<aspect>.csv    threshold, recall, precision (unweighted) and recall_w, precision_w (IA-weighted)
  plots/precision_recall.png  the three curves drawn (what `dvc plots show` puts on its page)
and the neural member's <train.out>/history.csv (epoch, train_loss, val_loss, val_f_w_mean, lr) with history.png.
The plots DVC shows are these PNG files, not vega specs: its page then loads no script from a CDN and renders
offline (`dvc plots diff` shows each revision's image side by side).
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
    paths, tables = [], {}
    for aspect, (curves, curves_w) in per_aspect.items():
        path = Path(folder) / f"pr_{aspect}.csv"
        tables[aspect] = pr_table(curves, curves_w, tau)
        with atomic_write(path) as out:
            tables[aspect].to_csv(out, index=False)
        paths.append(path)
    return [*paths, write_pr_png(tables, Path(folder) / "precision_recall.png")]


def write_history(history: Sequence[Mapping[str, float]], path: str | Path) -> Path:
    """The training curves (NeuralPredictor.result.history: one dict per epoch) as epoch + HISTORY_COLUMNS,
    and drawn beside it (<stem>.png: loss per epoch, validation weighted F-max per epoch)."""
    frame = pd.DataFrame(list(history))
    frame.insert(0, "epoch", np.arange(1, len(frame) + 1))
    columns = ["epoch", *[c for c in HISTORY_COLUMNS if c in frame]]
    with atomic_write(path) as out:
        frame[columns].to_csv(out, index=False)
    _history_png(frame[columns], Path(path).with_suffix(".png"))
    return Path(path)


def _save(fig, path: Path) -> Path:
    with atomic_write(path, "wb") as out:
        fig.savefig(out, format="png", dpi=110)
    return path


def _history_png(frame: pd.DataFrame, path: Path) -> Path:
    from matplotlib.figure import Figure  # no pyplot: no global backend state, works headless

    fig = Figure(figsize=(9, 3.2))
    loss, score = fig.subplots(1, 2)
    for column in ("train_loss", "val_loss"):
        if column in frame:
            loss.plot(frame["epoch"], frame[column], marker=".", label=column)
    loss.set(xlabel="epoch", ylabel="loss", title="neural member: loss per epoch")
    loss.legend(frameon=False)
    if "val_f_w_mean" in frame:
        score.plot(frame["epoch"], frame["val_f_w_mean"], marker=".", color="C2")
    score.set(xlabel="epoch", ylabel="weighted F-max", title="validation weighted F-max per epoch")
    fig.tight_layout()
    return _save(fig, path)


def write_pr_png(tables: Mapping[str, pd.DataFrame], path: str | Path) -> Path:
    """Precision vs recall per aspect (unweighted, solid; IA-weighted, dashed) in one PNG."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    for k, (aspect, table) in enumerate(tables.items()):
        ax.plot(table["recall"], table["precision"], color=f"C{k}", label=aspect)
        ax.plot(table["recall_w"], table["precision_w"], color=f"C{k}", ls="--", label=f"{aspect} (IA-weighted)")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1))
    ax.set_title("ensemble on the test split: precision vs recall", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return _save(fig, Path(path))


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
