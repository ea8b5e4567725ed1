"""Predictor kinds by name, and the members the chain fits. Adding a member = its module (a `Predictor`
subclass), one line in PREDICTORS and MEMBER_STEPS here, and its params.yaml block; MLproject and dvc.yaml
list the same members (tests/test_members.py fails when they disagree).

Classes are imported on first use, so naming a kind does not import torch or DIAMOND helpers."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cafa_mlflow.errors import ConfigError

if TYPE_CHECKING:
    from cafa_mlflow.config.schema import Params
    from cafa_mlflow.go.ontology import Ontology

PREDICTORS = {
    "naive": "cafa_mlflow.predictors.naive:NaivePredictor",
    "homology": "cafa_mlflow.predictors.homology:HomologyPredictor",
    "reference": "cafa_mlflow.predictors.reference:ReferencePredictor",
    "knn": "cafa_mlflow.predictors.knn:KnnPredictor",
    "neural": "cafa_mlflow.predictors.neural.predictor:NeuralPredictor",
    "ensemble": "cafa_mlflow.predictors.combine.blend:EnsemblePredictor",
    "stacked": "cafa_mlflow.predictors.combine.stacked:StackedPredictor",
    "learned": "cafa_mlflow.predictors.combine.learned:LearnedPredictor",
}
ENSEMBLE_METHODS = {
    "blend": "ensemble",
    "stacker": "stacked",
    "learned": "learned",
}  # params.yaml ensemble.method -> kind
MEMBER_KINDS = tuple(k for k in PREDICTORS if k not in ENSEMBLE_METHODS.values())
# the members the chain fits, in order: name -> the `cafa` step (MLproject entry point + flags) that fits it
MEMBER_STEPS: dict[str, tuple[str, ...]] = {
    "naive": ("member", "--predictor", "naive"),
    "homology": ("member", "--predictor", "homology"),
    "reference": ("member", "--predictor", "reference"),  # optional: skipped with a notice when not installed
    "knn": ("member", "--predictor", "knn"),
    "neural": ("train",),
}


def predictor_class(kind: str) -> type:  # a Predictor subclass (base.py imports this module)
    if kind not in PREDICTORS:
        raise ConfigError(f"unknown predictor kind {kind!r}; use one of {', '.join(PREDICTORS)}.")
    module, name = PREDICTORS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def build(kind: str, params: Params, ontology: Ontology, **context: Any) -> Any:
    """An unfitted predictor of `kind`, configured from its params.yaml block and what it `needs` of others;
    `context`: what the caller holds (an ensemble's `members` and `ia`)."""
    cls = predictor_class(kind)
    return cls.from_params(params.block(cls.params_block or kind), ontology, **cls.needs(params), **context)


def unavailable(kind: str, params: Params) -> str | None:
    """Why member `kind` cannot run with these params on this machine (an optional resource missing), None when
    it can: the chain, `cafa member` and the ensemble skip such a member with a notice."""
    return predictor_class(kind).unavailable(params)
