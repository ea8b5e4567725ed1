"""`ensemble`: per-aspect member weights fitted on the validation split only, then GO-consistent, capped,
rounded ensemble predictions of val and test, one registered pyfunc model (champion when it is better)."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from cafa_mlflow import tracking
from cafa_mlflow.dataset import load_prepared
from cafa_mlflow.ensemble import combine, finalize, fit_weights, round_scores
from cafa_mlflow.errors import InputError
from cafa_mlflow.go.ontology import ASPECTS, load_obo
from cafa_mlflow.io.text import atomic_write
from cafa_mlflow.labels import TermMatrix, load_term_matrix, save_term_matrix
from cafa_mlflow.predictors.members import KINDS
from pipelines.common import parse_params, run_main
from pipelines.member import split_ids

SECTIONS = ("ensemble", "prepare", "data")
NAME = "ensemble"


def member_kind(name: str, folder: Path) -> str:
    """Kind of a saved member: its folder name when that is a kind, else config.json's `kind`."""
    if name in KINDS:
        return name
    config = folder / "model" / "config.json"
    kind = json.loads(config.read_text()).get("kind") if config.is_file() else None
    if kind not in KINDS:
        raise InputError(
            f"{folder}: cannot tell which predictor kind member {name!r} is; name its folder after "
            f"one of {', '.join(KINDS)}."
        )
    return kind


def load_members(root: Path, names: list[str], split: str) -> dict[str, TermMatrix]:
    out = {}
    for name in names:
        path = root / name / f"{split}.npz"
        if not path.is_file():
            raise InputError(
                f"{path}: member {name!r} has no {split} predictions; run `cafa member --predictor "
                f"{name}` (neural: `cafa train`) first, or drop it from ensemble.members."
            )
        out[name] = load_term_matrix(path)
    return out


def aspect_scores(flat: dict[str, float], prefix: str = "val_") -> dict[str, float]:
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


def run_ensemble(params: dict, register: bool = True) -> dict[str, float]:
    """Fit weights, write predictions and metrics, log everything into the active MLflow run."""
    from cafa_mlflow.evaluation.scorer import Scorer, evaluate_predictions, flat_metrics, read_truth
    from cafa_mlflow.serving import log_go_model

    cfg = params["ensemble"]
    prepared = load_prepared(params["prepare"]["out"])
    ontology = load_obo(params["data"]["obo"])
    root, names = Path(cfg["predictions"]), list(cfg["members"])
    val_truth_file = prepared.truth_file("val")
    if val_truth_file is None:
        raise InputError(
            f"{prepared.root}: no val_terms.tsv; weights are fitted on validation data only, so run "
            "`cafa prepare` with prepare.val_fraction > 0."
        )
    truth = read_truth(val_truth_file, ontology)
    scorer = Scorer(ontology, truth, prepared.ia, cfg["th_step"])
    val = load_members(root, names, "val")
    member_metrics = {name: flat_metrics(scorer(tm), "val_") for name, tm in val.items()}
    fin = {"max_terms": cfg["max_terms"], "sig": cfg["sig"], "min_score": cfg["min_score"]}
    weights = fit_weights(
        val,
        truth,
        lambda _truth, pred: scorer(pred),
        ontology,
        cfg["step"],
        cfg["search"],
        "f_w",
        cfg["max_grid_points"],
        transform=lambda tm: round_scores(tm, cfg["sig"], cfg["min_score"]),
    )
    out, metrics = root / NAME, {}
    for split in ("val", "test"):
        members = val if split == "val" else load_members(root, names, "test")
        pred = finalize(combine(members, weights, ontology, proteins=split_ids(prepared, split)), ontology, **fin)
        save_term_matrix(out / f"{split}.npz", pred)
        truth_file = prepared.truth_file(split)
        if split == "val":
            metrics.update(flat_metrics(scorer(pred), "val_"))
        elif truth_file is not None:
            result = evaluate_predictions(ontology, read_truth(truth_file, ontology), pred, prepared.ia, cfg["th_step"])
            metrics.update(flat_metrics(result, "test_"))
    report = {"members": member_metrics, "ensemble": metrics, "weights": weights}
    metrics_file = Path(cfg["metrics_out"]) / "ensemble_val.json"
    with atomic_write(metrics_file) as handle:
        json.dump(report, handle, indent=1, sort_keys=True)

    tracking.log_params(
        {"members": ",".join(names), **{f"weight_{a}_{m}": w for a, per in weights.items() for m, w in per.items()}}
    )
    for name, flat in member_metrics.items():
        tracking.log_metrics(flat, prefix=f"{name}_")
    tracking.log_metrics(metrics)
    bars = {name: aspect_scores(flat) for name, flat in member_metrics.items()}
    bars[NAME] = aspect_scores(metrics)
    with tempfile.TemporaryDirectory() as tmp:
        plot = plot_members_vs_ensemble(
            bars, str(Path(tmp) / "members_vs_ensemble.png"), title="validation: members vs ensemble"
        )
        tracking.log_artifacts([plot, metrics_file], "ensemble")
    model_members = {name: (member_kind(name, root / name), root / name / "model") for name in names}
    info = log_go_model(model_members, weights, params["embed"], params["data"]["obo"], finalize_args=fin)
    if register:
        version, promoted = tracking.register_and_promote(
            info.model_uri, params["tracking"]["registered_model"], metrics["val_f_w_mean"], prepared.split_id
        )
        print(
            f"registered {params['tracking']['registered_model']} v{version}"
            f"{' as champion' if promoted else ' (champion unchanged)'}"
        )
    return metrics


def main(argv=None) -> dict[str, float]:
    params, _ = parse_params(argv, "cafa ensemble", __doc__, SECTIONS)
    with tracking.start_run(params, NAME, extra_params=params["ensemble"]):
        metrics = run_ensemble(params)
    print(
        f"ensemble: val_f_w_mean={metrics['val_f_w_mean']:.3f}; predictions in "
        f"{Path(params['ensemble']['predictions']) / NAME}"
    )
    return metrics


if __name__ == "__main__":
    sys.exit(run_main(main))
