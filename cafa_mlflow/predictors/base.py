"""The one predictor interface: `fit(train)` then `predict(proteins) -> TermMatrix`.

A predictor takes what it needs from the two bundles below (labels, embeddings, sequences) and ignores
the rest, so the ensemble, the evaluator and `predict` never special-case a member.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cafa_mlflow.errors import InputError
from cafa_mlflow.labels import TermMatrix


@dataclass
class ProteinSet:
    """Proteins to score: ids plus whatever inputs a predictor may need, row-aligned with `ids`."""

    ids: list[str]
    embeddings: Any = None  # N x D array-like (np.memmap allowed), row i = ids[i]
    fasta: str | os.PathLike | None = None  # sequences of (at least) `ids`; plain, .gz or .xz

    def __post_init__(self) -> None:
        self.ids = list(self.ids)
        if self.embeddings is not None and len(self.embeddings) != len(self.ids):
            raise InputError(
                f"{len(self.embeddings)} embedding rows for {len(self.ids)} protein ids; "
                "pass one embedding row per id, in the same order."
            )


@dataclass
class TrainSet(ProteinSet):
    """Training proteins with their propagated labels (rows of `labels` follow `ids`)."""

    labels: TermMatrix | None = None

    @classmethod
    def from_labels(
        cls, labels: TermMatrix, embeddings: Any = None, fasta: str | os.PathLike | None = None
    ) -> TrainSet:
        return cls(ids=labels.proteins, embeddings=embeddings, fasta=fasta, labels=labels)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.labels is None:
            raise InputError("a training set needs labels (a TermMatrix of propagated annotations).")
        if self.labels.proteins != self.ids:
            self.labels = self.labels.reindex(proteins=self.ids)


class Predictor(ABC):
    """Base class of every predictor; `name` is its key in ensembles and MLflow runs."""

    name: str = "predictor"

    @abstractmethod
    def fit(self, train: TrainSet) -> Predictor:
        """Learn from training proteins; returns self."""

    @abstractmethod
    def predict(self, proteins: ProteinSet) -> TermMatrix:
        """Scores in [0, 1]: proteins (in `proteins.ids` order) x the training term vocabulary."""

    def _require_fitted(self, attr: str) -> None:
        if getattr(self, attr, None) is None:
            raise RuntimeError(f"{type(self).__name__}.predict called before fit")


def as_ids(proteins: ProteinSet | Sequence[str]) -> list[str]:
    """Ids of a ProteinSet or a plain sequence of ids."""
    return proteins.ids if isinstance(proteins, ProteinSet) else list(proteins)


def term_aspects(terms: Sequence[str], aspect_of: Any) -> np.ndarray:
    """Aspect of each term from an Ontology (its `index`/`aspect`) or a {term: aspect} mapping.

    Unknown terms raise InputError (they do not belong to the ontology the labels were built on)."""
    if hasattr(aspect_of, "index") and hasattr(aspect_of, "aspect"):
        index, aspects = aspect_of.index, aspect_of.aspect
        lookup = {t: aspects[index[t]] for t in terms if t in index}
    else:
        lookup = dict(aspect_of)
    missing = [t for t in terms if t not in lookup]
    if missing:
        raise InputError(
            f"{len(missing)} terms have no aspect in the ontology, e.g. {', '.join(missing[:5])}; "
            "build labels and predictions over the same OBO file."
        )
    return np.array([lookup[t] for t in terms], dtype=object)
