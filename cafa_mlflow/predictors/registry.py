"""Predictor kinds by name. Adding a member = one new module with a `Predictor` subclass + one line here.

Classes are imported on first use, so naming a kind does not import torch or DIAMOND helpers."""

from __future__ import annotations

import importlib
from typing import Any

from cafa_mlflow.errors import ConfigError

PREDICTORS = {
    "naive": "cafa_mlflow.predictors.naive:NaivePredictor",
    "homology": "cafa_mlflow.predictors.homology:HomologyPredictor",
    "reference": "cafa_mlflow.predictors.reference:ReferencePredictor",
    "knn": "cafa_mlflow.predictors.knn:KnnPredictor",
    "neural": "cafa_mlflow.predictors.neural.predictor:NeuralPredictor",
    "ensemble": "cafa_mlflow.predictors.ensemble:EnsemblePredictor",
    "stacked": "cafa_mlflow.predictors.stacked:StackedPredictor",
}
ENSEMBLE_METHODS = {"blend": "ensemble", "stacker": "stacked"}  # params.yaml ensemble.method -> kind
MEMBER_KINDS = tuple(k for k in PREDICTORS if k not in ENSEMBLE_METHODS.values())


def predictor_class(kind: str) -> Any:
    if kind not in PREDICTORS:
        raise ConfigError(f"unknown predictor kind {kind!r}; use one of {', '.join(PREDICTORS)}.")
    module, name = PREDICTORS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def build(kind: str, params: Any, ontology: Any) -> Any:
    """An unfitted predictor of `kind`, configured from its params.yaml block."""
    return predictor_class(kind).from_params(params, ontology)
