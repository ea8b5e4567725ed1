"""LearnedPredictor (`ensemble.method: learned`): gradient-boosted trees over (protein, candidate term) pairs
whose features are the members' scores and the search members' hit statistics (combine/hit_pairs.py).

A Predictor like its members: `fit` learns from out-of-fold pairs of training proteins (the members' saved
out-of-fold scores and `<split>_features.npz`, written by each member's own `term_features`); `predict` runs
every member, reads their `term_features()` of the same hits and scores the candidates, so the registered model
computes the same features for new proteins. Settings: params.yaml's `stacker` block (shared with `stacker`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cafa_mlflow.errors import InputError
from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.predictors.base import Predictor, ProteinSet, TrainSet
from cafa_mlflow.predictors.combine.features import TermInfo, gather, term_info
from cafa_mlflow.predictors.combine.hit_pairs import candidate_recall, learned_pairs
from cafa_mlflow.predictors.combine.importance import pair_importances
from cafa_mlflow.predictors.combine.stacked import StackedPredictor
from cafa_mlflow.predictors.combine.stacker import Stacker
from cafa_mlflow.predictors.hit_features import HitFeatures
from cafa_mlflow.predictors.naive import term_frequencies

CONFIG, TERMS, MODEL = "learned.json", "terms.tsv", "stacker"
Features = dict[str, HitFeatures]


class LearnedPredictor(StackedPredictor):
    """The stacker's trees and settings (StackedPredictor: construction, from_params), over the members' scores and
    hit features, without the stacker's training-frequency column."""

    kind = "learned"
    config_file = CONFIG
    reads_features: ClassVar[bool] = True  # fit/finalized take the members' term features

    def __init__(
        self, members: dict[str, Predictor], ontology: Any = None, settings: Any = None, ia: Any = None
    ) -> None:
        """members: name -> fitted predictor; settings: the stacker block; ia: term -> information accretion."""
        super().__init__(members, ontology, settings, ia)
        self.feature_members: list[str] = []  # members whose term features are columns (fixed at fit)
        self.fit_report: dict[str, float] = {}

    def summary(self) -> dict[str, Any]:
        """What the run logs as params: the stacker block and the fit's candidate recall (out-of-fold)."""
        block = {f"stacker.{k}": v for k, v in self.settings.to_dict().items()} if self.settings else {}
        return {**block, **{f"learned_fit_{k}": v for k, v in self.fit_report.items()}}

    def fit(
        self,
        train: TrainSet,
        *,
        scorer: Any = None,
        member_predictions: dict[str, TermMatrix] | None = None,
        member_features: Features | None = None,
    ) -> LearnedPredictor:
        """Learn from the members' out-of-fold scores and term features of `train` (no member was fitted on these
        proteins) and train.labels (propagated). `scorer` is unused (the trees fit a loss)."""
        if member_predictions is None:
            member_predictions, member_features = self._member_outputs(train)
        if set(member_predictions) != set(self.members):
            raise InputError(f"member predictions of {sorted(member_predictions)} for {sorted(self.members)}.")
        self.feature_members = [n for n in self.members if n in (member_features or {})]
        proteins = list(train.ids)
        self.terms = [
            t
            for t in dict.fromkeys(t for tm in member_predictions.values() for t in tm.terms)
            if t in self.ontology.index
        ]
        truth = train.labels.reindex(proteins=proteins, terms=self.terms).matrix
        aspects = self.ontology.aspect[[self.ontology.index[t] for t in self.terms]]
        self.freq = term_frequencies(truth, aspects, "aspect").astype(np.float32)
        self.info = term_info(self.terms, self.ontology, self.ia)
        self.floors = (float(self.settings.member_floor), float(self.settings.naive_floor))
        pairs = self.pairs(member_predictions, member_features or {}, proteins)
        self.fit_report = candidate_recall(pairs, truth, self.info.ia)
        self.stacker = Stacker.from_settings(self.settings).fit(pairs, gather(truth, pairs.rows, pairs.cols) > 0)
        return self

    def pairs(self, member_predictions: dict[str, TermMatrix], member_features: Features, ids: list[str]) -> Any:
        """The candidate pairs of `ids` and their features, columns in the fitted order."""
        scores = {name: member_predictions[name].reindex(list(ids), self.terms).matrix for name in self.members}
        missing = [n for n in self.feature_members if n not in member_features]
        if missing:
            raise InputError(f"no term features of members {missing}; re-run them (cafa member) to write them.")
        feats = {n: member_features[n].reindex(list(ids), self.terms) for n in self.feature_members}
        return learned_pairs(scores, feats, self.freq, self.info, *self.floors)

    def combine(
        self, member_predictions: dict[str, TermMatrix], ids: list[str], member_features: Features | None = None
    ) -> TermMatrix:
        """Learned scores of the candidate terms of `ids` (raw: GO-consistency comes after)."""
        self._require_fitted("stacker")
        pairs = self.pairs(member_predictions, member_features or {}, list(ids))
        scores = np.maximum(self.stacker.predict_pairs(pairs), np.finfo(np.float32).tiny)
        matrix = sp.csr_matrix((scores, (pairs.rows, pairs.cols)), shape=(len(ids), len(self.terms)))
        return TermMatrix(list(ids), self.terms, matrix)

    def report_tables(self, member_predictions: dict[str, TermMatrix], truth: TermMatrix, **context: Any) -> dict:
        """Permutation importances of the features on a sample of `truth`'s proteins' candidate pairs (validation)
        and the candidate recall there; context: `member_features` of the same proteins."""
        s = self.settings
        if s is None or not s.importance_pairs:
            return {}
        ids = list(truth.proteins)
        pairs = self.pairs(member_predictions, context.get("member_features") or {}, ids)
        y = gather(truth.reindex(proteins=ids, terms=self.terms).matrix, pairs.rows, pairs.cols) > 0
        table = pair_importances(self.stacker.model, pairs, y, s.importance_pairs, s.importance_repeats, s.seed)
        return {"importances": table}

    def _member_outputs(self, proteins: ProteinSet) -> tuple[dict[str, TermMatrix], Features]:
        """Each member's scores of `proteins` and the term features of the same predict() (members with some)."""
        scores, feats = {}, {}
        for name, member in self.members.items():
            scores[name] = member.predict(proteins)
            if (found := member.term_features()) is not None:
                feats[name] = found
        return scores, feats

    def predict(self, proteins: ProteinSet) -> TermMatrix:
        self._last, feats = self._member_outputs(proteins)  # _last: kept for evidence
        return self.combine(self._last, proteins.ids, feats)

    def save_files(self, folder: Path) -> None:
        self._require_fitted("stacker")
        self.save_members(folder, floors=self.floors, feature_members=self.feature_members, fit_report=self.fit_report)
        self.stacker.save(folder / MODEL)
        table = {"term": self.terms, "freq": self.freq, "ia": self.info.ia, "depth": self.info.depth}
        pd.DataFrame({**table, "aspect_code": self.info.aspect_code}).to_csv(folder / TERMS, sep="\t", index=False)

    @classmethod
    def load_files(cls, folder: Path) -> LearnedPredictor:
        members, config = cls.load_members(folder)
        self = cls(members)
        self.stacker = Stacker.load(folder / MODEL)
        table = pd.read_csv(folder / TERMS, sep="\t")
        self.terms, self.freq = table["term"].tolist(), table["freq"].to_numpy(np.float32)
        self.info = TermInfo(*(table[c].to_numpy(np.float32) for c in ("ia", "depth", "aspect_code")))
        self.floors, self.feature_members = tuple(config["floors"]), list(config["feature_members"])
        self.fit_report = dict(config.get("fit_report", {}))
        return self
