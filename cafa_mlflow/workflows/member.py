"""Fit one member on the prepared `train` split only, predict `val` and `test`, save and score them."""

from __future__ import annotations

from typing import Any

from cafa_mlflow.evaluation.scorer import flat_metrics
from cafa_mlflow.go.ontology import load_obo
from cafa_mlflow.io.text import check_writable
from cafa_mlflow.predictors import registry
from cafa_mlflow.run_meta import log_prepared_splits
from cafa_mlflow.workflows.common import SPLITS, ensure_prepared, member_folder, protein_set, split_scorer, write_member


def fit_member(kind: str, params: Any) -> dict[str, float]:
    """Fit, predict, evaluate and save member `kind` under <outputs.predictions>/<kind>; returns metrics."""
    check_writable(member_folder(params, kind), folder=True)
    prepared = ensure_prepared(params)
    log_prepared_splits(prepared)
    ontology = load_obo(params.data.obo)
    predictor = registry.build(kind, params, ontology)
    labels = prepared.split_labels("train", all_terms=predictor.label_terms == "all")
    train = protein_set(predictor, params, prepared, "train", labels=labels)
    predictor.fit(train)
    predictions, metrics = {}, {}
    for split in SPLITS:
        if split == "test" and not prepared.test_fasta.exists():
            continue
        predictions[split] = predictor.predict(protein_set(predictor, params, prepared, split))
        scorer = split_scorer(prepared, ontology, split, params.evaluate.threshold_step)
        if scorer is not None:
            metrics.update(flat_metrics(scorer(predictions[split]), f"{split}_"))
    write_member(member_folder(params, kind), predictor, predictions, metrics)
    return metrics
