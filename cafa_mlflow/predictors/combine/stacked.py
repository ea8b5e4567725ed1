"""StackedPredictor: member predictors combined by a learned stacker instead of fixed weights.

A Predictor like its members (and like EnsemblePredictor, the simplex blend it is compared with): `fit`
learns gradient-boosted trees (combine/stacker.py) over (protein, candidate term) pairs from the members'
out-of-fold scores of training proteins; `predict` runs every member and scores their candidates. Features
come from the members' scores only (`pairs`: hit_pairs.pair_features without hit statistics), so any set of
members works, with or without embeddings; LearnedPredictor (combine/learned.py) is the same model with the search
members' hit statistics as further columns. Output is raw: GO-consistency, caps and rounding come after
(ensemble.finalize).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cafa_mlflow.errors import InputError
from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.predictors.base import Predictor, TrainSet
from cafa_mlflow.predictors.combine.blend import Combined
from cafa_mlflow.predictors.combine.features import Pairs, TermInfo, gather, term_info
from cafa_mlflow.predictors.combine.hit_pairs import pair_features
from cafa_mlflow.predictors.combine.stacker import Stacker
from cafa_mlflow.predictors.naive import term_frequencies

if TYPE_CHECKING:
    from cafa_mlflow.config.schema import StackerParams
    from cafa_mlflow.go.ontology import Ontology

CONFIG, TERMS, STACKER = "stacked.json", "terms.tsv", "stacker"


class StackedPredictor(Combined):
    kind = "stacked"
    params_block = "stacker"
    config_file = CONFIG

    def __init__(
        self, members: dict[str, Predictor], ontology: Any = None, settings: Any = None, ia: Any = None
    ) -> None:
        """members: name -> fitted predictor; settings: the stacker block; ia: term -> information accretion."""
        super().__init__(members)
        self.ontology, self.settings, self.ia = ontology, settings, ia or {}
        self.stacker: Stacker | None = None
        self.terms: list[str] = []
        self.freq = np.zeros(0, np.float32)  # each term's frequency among the fitted proteins: candidates only
        self.info: TermInfo | None = None
        self.floors = (0.0, 1.0)
        self.feature_members: list[str] = []  # members whose term features are columns (LearnedPredictor: fixed at fit)

    @classmethod
    def from_params(
        cls, block: StackerParams, ontology: Ontology, members: dict[str, Predictor], ia: Any = None
    ) -> StackedPredictor:
        return cls(members, ontology, block, ia)

    def summary(self) -> dict[str, Any]:
        """What the run logs as params: the stacker block under its params.yaml names."""
        return {f"stacker.{k}": v for k, v in self.settings.to_dict().items()} if self.settings else {}

    def fit(
        self, train: TrainSet, *, scorer: Any = None, member_predictions: dict[str, TermMatrix] | None = None
    ) -> StackedPredictor:
        """Learn from the members' scores of `train` (out-of-fold: no member was fitted on these proteins)
        and train.labels (propagated, over every carried term). `scorer` is unused (the trees fit a loss)."""
        preds = self.member_scores(train, member_predictions)
        self.fit_pairs(train, preds, {})
        return self

    def fit_pairs(
        self, train: TrainSet, member_predictions: dict[str, TermMatrix], member_features: dict
    ) -> tuple[Pairs, sp.csr_matrix]:
        """Fit the trees on the candidate pairs of `train` (the members' scores and term features of it) and its
        labels; the pairs and the truth over `self.terms` are returned for what a subclass reports of the fit."""
        if set(member_predictions) != set(self.members):
            raise InputError(
                f"member predictions of {sorted(member_predictions)} for members {sorted(self.members)}; "
                "pass one per member."
            )
        proteins = list(train.ids)
        found = dict.fromkeys(t for name in self.members for t in member_predictions[name].terms)
        self.terms = [t for t in found if t in self.ontology.index]
        truth = train.labels.reindex(proteins=proteins, terms=self.terms).matrix
        aspects = self.ontology.aspect[[self.ontology.index[t] for t in self.terms]]
        self.freq = term_frequencies(truth, aspects, "aspect").astype(np.float32)
        self.info = term_info(self.terms, self.ontology, self.ia)
        self.floors = (float(self.settings.member_floor), float(self.settings.naive_floor))
        pairs = self.pairs(member_predictions, member_features, proteins)
        self.stacker = Stacker.from_settings(self.settings).fit(pairs, gather(truth, pairs.rows, pairs.cols) > 0)
        return pairs, truth

    def pairs(self, member_predictions: dict[str, TermMatrix], member_features: dict, ids: list[str]) -> Pairs:
        """The candidate pairs of `ids` and their features (the members' scores, and the term features of
        `feature_members`: none for the stacker), columns in the fitted order."""
        scores = {name: member_predictions[name].reindex(list(ids), self.terms).matrix for name in self.members}
        missing = [n for n in self.feature_members if n not in member_features]
        if missing:
            raise InputError(f"no term features of members {missing}; re-run them (cafa member) to write them.")
        feats = {n: member_features[n].reindex(list(ids), self.terms) for n in self.feature_members}
        return pair_features(scores, feats, self.freq, self.info, *self.floors)

    def combine(
        self, member_predictions: dict[str, TermMatrix], ids: list[str], member_features: dict | None = None
    ) -> TermMatrix:
        """Stacker scores of the members' candidate terms for `ids` (raw: GO-consistency comes after)."""
        self._require_fitted("stacker")
        pairs = self.pairs(member_predictions, member_features or {}, list(ids))
        scores = np.maximum(self.stacker.predict_pairs(pairs), np.finfo(np.float32).tiny)
        matrix = sp.csr_matrix((scores, (pairs.rows, pairs.cols)), shape=(len(ids), len(self.terms)))  # unique pairs
        return TermMatrix(list(ids), self.terms, matrix)

    def saved_config(self) -> dict[str, Any]:
        """What the config file holds beside the members' kinds (a subclass adds its own)."""
        return {"floors": self.floors}

    def read_config(self, config: dict[str, Any]) -> None:
        """Set what `saved_config` wrote (a subclass reads its own keys too)."""
        self.floors = tuple(config["floors"])

    def save_files(self, folder: Path) -> None:
        self._require_fitted("stacker")
        self.save_members(folder, **self.saved_config())
        self.stacker.save(folder / STACKER)
        table = {"term": self.terms, "freq": self.freq, "ia": self.info.ia, "depth": self.info.depth}
        pd.DataFrame({**table, "aspect_code": self.info.aspect_code}).to_csv(folder / TERMS, sep="\t", index=False)

    @classmethod
    def load_files(cls, folder: Path) -> StackedPredictor:
        members, config = cls.load_members(folder)
        self = cls(members)
        self.stacker = Stacker.load(folder / STACKER)
        table = pd.read_csv(folder / TERMS, sep="\t")
        self.terms, self.freq = table["term"].tolist(), table["freq"].to_numpy(np.float32)
        self.info = TermInfo(*(table[c].to_numpy(np.float32) for c in ("ia", "depth", "aspect_code")))
        self.read_config(config)
        return self
