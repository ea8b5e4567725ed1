"""LearnedPredictor (`ensemble.method: learned`): gradient-boosted trees over (protein, candidate term) pairs
whose features are the members' scores and the search members' hit statistics (combine/hit_pairs.py): the stacker
(combine/stacked.py) with the search members' term features as columns.

A Predictor like its members: `fit` learns from out-of-fold pairs of training proteins (the members' saved
out-of-fold scores and `<split>_features.npz`, written by each member's own `term_features`); `predict` runs
every member, reads their `term_features()` of the same hits and scores the candidates, so the registered model
computes the same features for new proteins. Settings: params.yaml's `stacker` block (shared with `stacker`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.predictors.base import Predictor, ProteinSet, TrainSet
from cafa_mlflow.predictors.combine.features import gather
from cafa_mlflow.predictors.combine.hit_pairs import candidate_recall
from cafa_mlflow.predictors.combine.importance import pair_importances
from cafa_mlflow.predictors.combine.stacked import StackedPredictor
from cafa_mlflow.predictors.hit_features import HitFeatures

CONFIG = "learned.json"
Features = dict[str, HitFeatures]


class LearnedPredictor(StackedPredictor):
    """The stacker's trees, settings, fit, combine and saved files (StackedPredictor), over the members' scores and
    the search members' hit features (`pairs`)."""

    kind = "learned"
    config_file = CONFIG
    reads_features: ClassVar[bool] = True  # fit/finalized take the members' term features

    def __init__(
        self, members: dict[str, Predictor], ontology: Any = None, settings: Any = None, ia: Any = None
    ) -> None:
        """members: name -> fitted predictor; settings: the stacker block; ia: term -> information accretion."""
        super().__init__(members, ontology, settings, ia)
        self.fit_report: dict[str, float] = {}

    def summary(self) -> dict[str, Any]:
        """What the run logs as params: the stacker block and the fit's candidate recall (out-of-fold)."""
        return {**super().summary(), **{f"learned_fit_{k}": v for k, v in self.fit_report.items()}}

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
        self.feature_members = [n for n in self.members if n in (member_features or {})]
        pairs, truth = self.fit_pairs(train, member_predictions, member_features or {})
        self.fit_report = candidate_recall(pairs, truth, self.info.ia)
        return self

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
        scores = self.predict_members(proteins)
        feats = {name: found for name, m in self.members.items() if (found := m.term_features()) is not None}
        return scores, feats

    def predict(self, proteins: ProteinSet) -> TermMatrix:
        self._last, feats = self._member_outputs(proteins)  # _last: kept for evidence
        return self.combine(self._last, proteins.ids, feats)

    def saved_config(self) -> dict[str, Any]:
        return {**super().saved_config(), "feature_members": self.feature_members, "fit_report": self.fit_report}

    def read_config(self, config: dict[str, Any]) -> None:
        super().read_config(config)
        self.feature_members = list(config["feature_members"])
        self.fit_report = dict(config.get("fit_report", {}))
