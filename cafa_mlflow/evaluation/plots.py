"""Plots of evaluation results logged as run artifacts."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from cafa_mlflow.errors import InputError
from cafa_mlflow.go.ontology import ASPECTS


def aspect_scores(flat: Mapping[str, float], prefix: str = "val_") -> dict[str, float]:
    """{BPO, CCO, MFO, mean: weighted F-max} from flat metrics, for the bar plot."""
    keys = [*ASPECTS, "mean"]
    return {k: flat[f"{prefix}f_w_{k}"] for k in keys if f"{prefix}f_w_{k}" in flat}


def plot_members_vs_ensemble(
    metrics: Mapping[str, Mapping[str, float]], path: str, title: str = "", ylabel: str = "weighted F-max"
) -> str:
    """Grouped bar chart: one group per aspect (and "mean" if given), one bar per member; saved to `path`."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state, works headless

    frame = pd.DataFrame(metrics).T  # members x aspects
    if frame.empty:
        raise InputError("plot_members_vs_ensemble: no metrics to plot.")
    groups = list(frame.columns)
    width = 0.8 / len(frame)
    fig = Figure(figsize=(max(4.0, 1.6 * len(groups) + 1), 3.5))
    ax = fig.subplots()
    for i, (member, row) in enumerate(frame.iterrows()):
        xs = np.arange(len(groups)) + (i - (len(frame) - 1) / 2) * width
        bars = ax.bar(xs, row.to_numpy(float), width, label=str(member))
        ax.bar_label(bars, fmt="%.3f", fontsize=6, padding=1)
    ax.set_xticks(np.arange(len(groups)), groups)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, min(1.0, float(np.nanmax(frame.to_numpy(float))) * 1.2 + 0.02))
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path
