"""Members, simplex blend and the learned ensemble (trees over the members' scores and the search members' hit
statistics): weighted F-max per aspect on validation and the visible test set, the gap, the learned model's
candidate recall, its fit time and feature importances, and the blend's weights.

Reads the members' saved {val,oof,test}.npz and <split>_features.npz (written by `cafa member` for homology and
reference), fits `ensemble.method` blend and learned on them (fit_on: oof; nothing registered, a throwaway MLflow
store), prints the tables and refreshes the "## Learned ensemble vs blend" section of benchmarks/RESULTS.md.

    python benchmarks/learned_vs_blend.py --params-file outputs/full/params.yaml [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import write_section  # noqa: E402

from cafa_mlflow.config.params_file import load_params  # noqa: E402
from cafa_mlflow.config.schema import Params  # noqa: E402
from cafa_mlflow.data.prepared import load_prepared  # noqa: E402
from cafa_mlflow.evaluation.truth import read_truth  # noqa: E402
from cafa_mlflow.go.labels import TermMatrix  # noqa: E402
from cafa_mlflow.go.ontology import ASPECTS, load_obo  # noqa: E402
from cafa_mlflow.predictors.base import Predictor  # noqa: E402
from cafa_mlflow.predictors.combine.hit_pairs import candidate_recall  # noqa: E402
from cafa_mlflow.predictors.transfer import GO_ROOTS  # noqa: E402
from cafa_mlflow.workflows.ensemble import fit_ensemble, saved_features, saved_predictions  # noqa: E402

TITLE = "## Learned ensemble vs blend: hit features"
METHODS = ("blend", "learned")


def fit_methods(params, out: Path) -> dict[str, dict]:
    """Fit each method on the saved members: {method: {metrics, cpu_s, wall_s, folder}}."""
    import mlflow

    done = {}
    with tempfile.TemporaryDirectory() as store:
        mlflow.set_tracking_uri(f"sqlite:///{store}/bench.db")
        for method in METHODS:
            folder = out / method
            p = params.with_overrides({"ensemble.method": method, "outputs.metrics": str(folder / "metrics")})
            wall, cpu = time.perf_counter(), time.process_time()
            with mlflow.start_run(run_name=f"bench {method}"):
                metrics = fit_ensemble(p, register=False, out=folder / "predictions")
            done[method] = {
                "metrics": metrics,
                "wall_s": time.perf_counter() - wall,
                "cpu_s": time.process_time() - cpu,
                "folder": folder,
            }
    return done


def propagated_truth(prepared, ontology, split: str) -> TermMatrix:
    """The split's truth propagated over the ontology, aspect roots left out (every protein has them)."""
    truth = read_truth(prepared.truth_file(split), ontology, prepared.ids(split)).reindex(terms=list(ontology.terms))
    matrix = ontology.propagate(truth.matrix).tolil()
    for root in GO_ROOTS.values():
        matrix[:, ontology.index[root]] = 0
    return TermMatrix(truth.proteins, list(ontology.terms), matrix.tocsr())


def recall(params, learned_folder: Path, prepared, ontology, names: list[str]) -> dict[str, dict[str, float]]:
    """The learned model's candidate recall on validation and test (truth pairs that are candidates)."""
    model = Predictor.load(learned_folder / "predictions" / "model")
    out = {}
    for split in ("val", "test"):
        ids = prepared.ids(split)
        preds = saved_predictions(params, names, split)
        pairs = model.pairs(preds, saved_features(params, names, split), ids)
        truth = propagated_truth(prepared, ontology, split).reindex(proteins=ids, terms=model.terms).matrix
        out[split] = candidate_recall(pairs, truth, model.info.ia)
    out["oof (fit)"] = model.fit_report
    return out


def score_table(members: dict[str, dict], fitted: dict[str, dict]) -> pd.DataFrame:
    rows = {**{n: m for n, m in members.items()}, **{f"ensemble {k}": v["metrics"] for k, v in fitted.items()}}
    table = []
    for name, m in rows.items():
        row = {"predictor": name}
        for split in ("val", "test"):
            row |= {f"{split} {a}": m.get(f"{split}_f_w_{a}", np.nan) for a in (*ASPECTS, "mean")}
        row["gap (val - test)"] = row["val mean"] - row["test mean"]
        table.append(row)
    return pd.DataFrame(table).round(3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params-file", default=None, help="YAML of keys overriding params.yaml")
    ap.add_argument("--out", type=Path, default=Path("outputs/bench_learned"))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    params = Params.from_dict(load_params(None, params_file=args.params_file))
    load = os.getloadavg()
    prepared, ontology = load_prepared(params.prepare.out), load_obo(params.data.obo)
    names = list(params.ensemble.members)
    root = Path(params.outputs.predictions)
    members = {n: json.loads((root / n / "metrics.json").read_text()) for n in names}
    fitted = fit_methods(params, args.out)
    scores = score_table(members, fitted)
    rec = pd.DataFrame(recall(params, fitted["learned"]["folder"], prepared, ontology, names)).T.round(3)
    imp = pd.read_csv(fitted["learned"]["folder"] / "metrics" / "ensemble_importances.tsv", sep="\t").round(4)
    weights = pd.read_csv(fitted["blend"]["folder"] / "metrics" / "ensemble_weights.tsv", sep="\t").round(3)
    timing = ", ".join(f"{k} {v['cpu_s']:.0f} CPU s / {v['wall_s']:.0f} s wall" for k, v in fitted.items())
    body = (
        f"{scores.to_markdown(index=False)}\n\nCandidate recall of the learned model (share of truth (protein, term) "
        f"pairs, aspect roots left out, that are candidates; IA-weighted too):\n\n{rec.to_markdown()}\n\n"
        f"Blend weights per aspect:\n\n{weights.to_markdown(index=False)}\n\nLearned model, permutation importance "
        f"(drop in the average precision of its pair scores, validation sample):\n\n"
        f"{imp.head(20).to_markdown(index=False)}\n\nFit + predict time per method (the ensemble step): {timing}."
    )
    print(body)
    if args.no_write:
        return
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    write_section(
        f"{TITLE}\n\nMachine: {platform.node()}, {os.cpu_count()} CPU cores, {platform.machine()}; date: {stamp}; "
        f"load average at start {load[0]:.1f} (shared machine; CPU seconds are the steadier number); command: "
        f"`python benchmarks/learned_vs_blend.py --params-file {args.params_file}` (members: {', '.join(names)}, "
        f"prepare.out={params.prepare.out}, outputs.predictions={params.outputs.predictions}). Weighted F-max "
        "(cafa_mlflow.evaluation.scorer, prepared IA); validation = homology-aware split, unfitted (both ensembles "
        "fit on the members' out-of-fold predictions of the train split, folds.oof_proteins of them).\n\n"
        f"{body}\n"
    )


if __name__ == "__main__":
    main()
