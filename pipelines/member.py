"""`member --predictor naive|homology|knn`: fit one ensemble member on the prepared `train` split only,
predict `val` and `test`, save <predictions>/<name>/{val,test}.npz and model/, log val_/test_ metrics."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from cafa_mlflow import tracking
from cafa_mlflow.dataset import Prepared, load_prepared
from cafa_mlflow.errors import ConfigError, InputError
from cafa_mlflow.go.ontology import Ontology, load_obo
from cafa_mlflow.io.fasta import read_fasta
from cafa_mlflow.io.text import atomic_write
from cafa_mlflow.labels import TermMatrix, save_term_matrix
from cafa_mlflow.predictors.base import ProteinSet, TrainSet
from pipelines.common import ensure_prepared, parse_params, run_main

PREDICTORS = ("naive", "homology", "knn")
SPLITS = ("val", "test")


def split_ids(prepared: Prepared, split: str) -> list[str]:
    if split == "test":
        return [r.id for r in read_fasta(prepared.test_fasta)]
    return prepared.ids(split)


def split_fasta(prepared: Prepared, split: str) -> Path:
    return prepared.test_fasta if split == "test" else prepared.train_fasta


def embeddings_for(params: dict, role: str, ids: list[str]) -> np.ndarray:
    """Rows of the role's embedding cache for `ids`, in that order (InputError naming a missing id)."""
    from cafa_mlflow.embed import load_embeddings
    from pipelines.embed import cache_for

    emb = load_embeddings(cache_for(params, role))
    if emb.offsets is not None:
        raise ConfigError(
            f"{cache_for(params, role)}: a ragged (strategy chunks) cache has no pooled vector per "
            "protein; embed with strategy balanced or sliding_window for knn."
        )
    index = emb.index()
    missing = [i for i in ids if i not in index]
    if missing:
        raise InputError(
            f"{len(missing)} proteins have no embedding in the {role} cache, e.g. {missing[0]}; "
            "re-run `cafa embed` after `cafa prepare`."
        )
    return emb.vectors[np.array([index[i] for i in ids], dtype=np.int64)]


def build_predictor(name: str, params: dict, ontology: Ontology) -> Any:
    cfg = params[name]
    if name == "naive":
        from cafa_mlflow.predictors.naive import NaivePredictor

        return NaivePredictor(ontology, cfg["denominator"], cfg["min_score"], cfg["top_k"])
    if name == "homology":
        from cafa_mlflow.predictors.homology import HomologyPredictor

        return HomologyPredictor(
            cfg["out"],
            cfg["sensitivity"],
            cfg["evalue"],
            cfg["max_target_seqs"],
            cfg["threads"],
            cfg["exclude_self"],
            cfg["executable"],
        )
    from cafa_mlflow.predictors.knn import KnnPredictor

    return KnnPredictor(cfg["k"], cfg["block_size"], cfg["exclude_self"])


def protein_set(name: str, params: dict, prepared: Prepared, split: str, ids: list[str], cls=ProteinSet, **kw):
    """What a predictor needs about `ids`: sequences (homology), embeddings (knn), nothing (naive)."""
    if name == "homology":
        return cls(ids=ids, fasta=split_fasta(prepared, split), **kw)
    if name == "knn":
        return cls(ids=ids, embeddings=embeddings_for(params, "test" if split == "test" else "train", ids), **kw)
    return cls(ids=ids, **kw)


def score(
    ontology: Ontology, truth_file: Path | None, pred: TermMatrix, ia: dict, th_step: float, prefix: str
) -> dict[str, float]:
    """Flat CAFA metrics of `pred` against a truth file (empty when there is no truth)."""
    if truth_file is None:
        return {}
    from cafa_mlflow.evaluation.scorer import evaluate_predictions, flat_metrics, read_truth

    result = evaluate_predictions(ontology, read_truth(truth_file, ontology), pred, ia, th_step)
    return flat_metrics(result, prefix)


def fit_member(name: str, params: dict) -> dict[str, float]:
    """Fit, predict, save and evaluate one member (inside the caller's MLflow run, if any)."""
    ensure_prepared(params)
    prepared = load_prepared(params["prepare"]["out"])
    ontology = load_obo(params["data"]["obo"])
    out = Path(params[name]["predictions"]) / name
    train_ids = prepared.ids("train")
    train = protein_set(name, params, prepared, "train", train_ids, TrainSet, labels=prepared.split_labels("train"))
    predictor = build_predictor(name, params, ontology).fit(train)
    metrics: dict[str, float] = {}
    for split in SPLITS:
        ids = split_ids(prepared, split)
        if name == "homology":
            predictor.hits_out = Path(params["homology"]["out"]) / f"hits_{split}.tsv"
        pred = predictor.predict(protein_set(name, params, prepared, split, ids))
        save_term_matrix(out / f"{split}.npz", pred)
        metrics.update(
            score(
                ontology,
                prepared.truth_file(split),
                pred,
                prepared.ia,
                params.get("ensemble", {}).get("th_step", 0.01),
                f"{split}_",
            )
        )
    predictor.save(out / "model")
    with atomic_write(out / "metrics.json") as handle:
        json.dump(metrics, handle, indent=1, sort_keys=True)
    return metrics


def main(argv=None) -> dict[str, float]:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--predictor", choices=PREDICTORS)
    known, rest = pre.parse_known_args(sys.argv[1:] if argv is None else argv)
    name = known.predictor
    if name is None:
        if any(a in ("-h", "--help") for a in rest):
            print(f"usage: cafa member --predictor {{{','.join(PREDICTORS)}}} [flags of that params.yaml block]")
            return {}
        raise ConfigError(f"pass --predictor, one of {', '.join(PREDICTORS)} (neural members come from `cafa train`).")
    params, _ = parse_params(rest, f"cafa member --predictor {name}", __doc__, (name, "prepare", "data", "embed"))
    with tracking.start_run(params, name, extra_params={"predictor": name, **params[name]}):
        metrics = fit_member(name, params)
        tracking.log_metrics(metrics)
        tracking.log_artifacts([Path(params[name]["predictions"]) / name / "metrics.json"], name)
    summary = ", ".join(f"{k}={v:.3f}" for k, v in metrics.items() if "f_w_" in k)
    print(f"{name}: predictions in {Path(params[name]['predictions']) / name} ({summary})")
    return metrics


if __name__ == "__main__":
    sys.exit(run_main(main))
