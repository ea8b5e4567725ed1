"""EnsemblePredictor: member predictors combined with per-aspect simplex weights fitted on held-out predictions.

It is a Predictor like its members: `fit` fits the weights on a TrainSet of proteins no member was fitted on
(out-of-fold or validation), `predict`
runs every member and combines their scores, `save` writes the weights plus each member's own folder."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from cafa_mlflow.errors import ConfigError, InputError, NotFittedError
from cafa_mlflow.go.finalize import BLOCK_ROWS, finalize_blocks, round_scores
from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.io.readback import read_json
from cafa_mlflow.io.text import write_json
from cafa_mlflow.predictors.base import Predictor, ProteinSet, TrainSet, term_aspects
from cafa_mlflow.predictors.combine.rescale import choose_rescaled, rescale_by_protein_max
from cafa_mlflow.predictors.combine.weights import combine, fit_weights

if TYPE_CHECKING:
    from cafa_mlflow.config.schema import EnsembleParams, Params, SubmissionParams
    from cafa_mlflow.go.ontology import Ontology

CONFIG = "ensemble.json"
TERMS = "term_aspect.tsv"
MEMBERS = "members"


class Combined(Predictor):
    """A Predictor made of member predictors (the blend, the stacker): their inputs, threads and encoder;
    each member is saved in its own folder under members/. The members predict side by side (threads: the
    search members' aligners are processes of their own, and the encoder of a served request runs meanwhile)."""

    takes_pending_inputs = True

    def __init__(self, members: dict[str, Predictor]) -> None:
        if not members:
            raise ConfigError("an ensemble needs at least one member (params.yaml ensemble.members).")
        self.members = dict(members)
        self.embed = common_embed(self.members)

    def inputs(self) -> set[str]:
        return set().union(*(m.inputs() for m in self.members.values()))

    def embedding_dim(self) -> int | None:
        return next((d for m in self.members.values() if (d := m.embedding_dim()) is not None), None)

    def set_threads(self, threads: int) -> None:
        for member in self.members.values():
            member.set_threads(threads)

    def set_query_set(
        self, ids: Sequence[str], sequences: Sequence[str], accessions: Sequence[str | None] | None = None
    ) -> None:
        for member in self.members.values():
            member.set_query_set(ids, sequences, accessions)

    config_file: ClassVar[str]  # the subclass's own settings, with the members' kinds
    reads_features: ClassVar[bool] = False  # fit/combine take the members' term_features (the learned ensemble)

    def combine(self, member_predictions: dict[str, TermMatrix], ids: list[str]) -> TermMatrix:
        """The ensemble's raw scores of `ids` from its members' scores of them (subclasses say how)."""
        raise NotImplementedError

    def finalized(
        self,
        member_predictions: dict[str, TermMatrix],
        ids: list[str],
        ontology: Any,
        submission: Any,
        member_features: dict[str, Any] | None = None,
    ) -> TermMatrix:
        """Submission-ready scores of `ids` (go.finalize of `combine`), combined and finalized one block of
        proteins at a time, so that memory holds the members' scores and the result, not every raw and
        propagated intermediate of the whole set at once. `member_features`: the members' term features of `ids`,
        passed to `combine` (only a predictor that `reads_features` takes them)."""
        extra = {"member_features": member_features} if self.reads_features else {}
        blocks = range(0, len(ids), BLOCK_ROWS)
        parts = (self.combine(member_predictions, ids[s : s + BLOCK_ROWS], **extra) for s in blocks)
        return finalize_blocks(parts, ontology, submission)

    def predict(self, proteins: ProteinSet) -> TermMatrix:
        self._last = self.predict_members(proteins)  # kept for evidence
        return self.combine(self._last, proteins.ids)

    def predict_members(self, proteins: ProteinSet) -> dict[str, TermMatrix]:
        """Every member's scores of `proteins`, the members run concurrently (each member's result is what it
        predicts alone); a member that reads vectors waits for pending embeddings, the others start at once."""
        with ThreadPoolExecutor(max_workers=len(self.members), thread_name_prefix="member") as pool:
            futures = {name: pool.submit(_predict_member, m, proteins) for name, m in self.members.items()}
            return {name: future.result() for name, future in futures.items()}

    def last_member_scores(self) -> dict[str, TermMatrix] | None:
        return getattr(self, "_last", None)

    def report_tables(self, member_predictions: dict[str, TermMatrix], truth: TermMatrix, **context: Any) -> dict:
        """Tables the ensemble run logs about the fit (name -> DataFrame), from validation; default: none."""
        return {}

    def evidence(self, protein: str, terms: Sequence[str], top: int = 3) -> dict[str, list[dict]] | None:
        """The members' evidence, each supporter tagged with the member's name in this ensemble."""
        out: dict[str, list[dict]] = {}
        for name, member in self.members.items():
            for term, found in (member.evidence(protein, terms, top) or {}).items():
                out.setdefault(term, []).extend({**row, "member": name} for row in found)
        return out

    def member_scores(
        self, proteins: ProteinSet, member_predictions: dict[str, TermMatrix] | None
    ) -> dict[str, TermMatrix]:
        """The members' scores of `proteins`: the saved ones when given, else each member predicts."""
        return member_predictions or self.predict_members(proteins)

    def save_members(self, folder: Path, **config: Any) -> None:
        """Each member into members/<name>/, and `config_file` = {members: {name: kind}, **config}."""
        for name, member in self.members.items():
            member.save(folder / MEMBERS / name)
        write_json(folder / self.config_file, {"members": {n: m.kind for n, m in self.members.items()}, **config})

    @classmethod
    def load_members(cls, folder: Path) -> tuple[dict[str, Predictor], dict[str, Any]]:
        """The saved members and `config_file`."""
        config = read_json(folder / cls.config_file)
        return {name: Predictor.load(folder / MEMBERS / name) for name in config["members"]}, config


class EnsemblePredictor(Combined):
    kind = "ensemble"
    config_file = CONFIG

    def __init__(
        self, members: dict[str, Predictor], ontology: Any = None, settings: Any = None, submission: Any = None
    ) -> None:
        """members: name -> fitted predictor; settings: the ensemble block (step, search, max_grid_points);
        submission: the submission block (candidates are rounded as they will be submitted)."""
        super().__init__(members)
        self.ontology, self.settings, self.submission = ontology, settings, submission
        self.weights: dict[str, dict[str, float]] | None = None
        self.term_aspect: dict[str, str] = {}
        self.rescaled: dict[str, list[str]] = {}  # aspect -> its roots: rescaled per protein (ensemble.rescale)

    @classmethod
    def from_params(
        cls,
        block: EnsembleParams,
        ontology: Ontology,
        submission: SubmissionParams,
        members: dict[str, Predictor] | None = None,
        ia: Any = None,
    ) -> EnsemblePredictor:
        return cls(members or {}, ontology, block, submission)

    @classmethod
    def needs(cls, params: Params) -> dict[str, Any]:
        return {"submission": params.submission}

    def summary(self) -> dict[str, Any]:
        """What the run logs as params: one weight per aspect and member, and whether each aspect is rescaled."""
        weights = {f"weight_{a}_{m}": w for a, per in (self.weights or {}).items() for m, w in per.items()}
        return {**weights, **{f"rescale_{a}": a in self.rescaled for a in self.weights or {}}}

    def report_tables(self, member_predictions: dict[str, TermMatrix], truth: TermMatrix, **context: Any) -> dict:
        """The fitted weights: one row per aspect, one column per member, and whether the aspect is rescaled."""
        table = pd.DataFrame(self.weights or {}).T.rename_axis("aspect").reset_index()
        return {"weights": table.assign(rescaled=table["aspect"].isin(list(self.rescaled)))}

    def fit(
        self, train: TrainSet, *, scorer: Any, member_predictions: dict[str, TermMatrix] | None = None
    ) -> EnsemblePredictor:
        """Per-aspect weights maximising `scorer`'s weighted F-max on `train` (proteins no member was fitted on:
        out-of-fold or validation). member_predictions: the members' saved scores of those proteins, if at hand."""
        preds = self.member_scores(train, member_predictions)
        s = self.submission
        self.weights = fit_weights(
            preds,
            train.labels,
            lambda _truth, pred: scorer(pred),
            self.ontology,
            self.settings.step,
            self.settings.search,
            "f_w",
            self.settings.max_grid_points,
            transform=lambda tm: round_scores(tm, s.sig, s.min_score),
        )
        terms = list(dict.fromkeys(t for tm in preds.values() for t in tm.terms))
        self.term_aspect = dict(zip(terms, term_aspects(terms, self.ontology).tolist()))
        self.rescaled = {}
        if getattr(self.settings, "rescale", "never") == "auto":  # chosen on the same proteins as the weights
            combined = combine(preds, self.weights, self.term_aspect, proteins=list(train.ids))
            roots = {a: self.ontology.roots(a) for a in dict.fromkeys(self.term_aspect.values())}
            self.rescaled = choose_rescaled(
                combined, self.term_aspect, roots, scorer, lambda tm: round_scores(tm, s.sig, s.min_score)
            )
        return self

    def combine(self, member_predictions: dict[str, TermMatrix], ids: list[str]) -> TermMatrix:
        """The weighted sum of the members' scores of `ids`, rescaled per protein in the chosen aspects (raw:
        GO-consistency and caps come after)."""
        if self.weights is None:
            raise NotFittedError("EnsemblePredictor.predict")
        combined = combine(member_predictions, self.weights, self.term_aspect, proteins=ids)
        return rescale_by_protein_max(combined, self.term_aspect, self.rescaled)

    def save_files(self, folder: Path) -> None:
        self.save_members(folder, weights=self.weights, rescaled=self.rescaled)
        pd.DataFrame({"term": list(self.term_aspect), "aspect": list(self.term_aspect.values())}).to_csv(
            folder / TERMS, sep="\t", index=False
        )

    @classmethod
    def load_files(cls, folder: Path) -> EnsemblePredictor:
        members, config = cls.load_members(folder)
        self = cls(members)
        self.weights = config["weights"]
        self.rescaled = config.get("rescaled", {})  # saved before ensemble.rescale: none
        table = pd.read_csv(folder / TERMS, sep="\t", dtype=str)
        self.term_aspect = dict(zip(table["term"], table["aspect"]))
        return self


def _predict_member(member: Predictor, proteins: ProteinSet) -> TermMatrix:
    return member.predict(proteins if member.takes_pending_inputs else proteins.for_inputs(member.inputs()))


def common_embed(members: dict[str, Predictor]) -> Any:
    """The one EmbedSettings of the members that use embeddings (ConfigError naming both when they differ)."""
    seen: tuple[str, Any] | None = None
    for name, member in members.items():
        if member.embed is None:
            continue
        if seen is None:
            seen = (name, member.embed)
        elif seen[1] != member.embed and not seen[1].same_vectors(member.embed):  # equal settings: no file read
            raise InputError(
                f"members {seen[0]!r} and {name!r} were fitted on different embeddings: {seen[1].describe()} vs "
                f"{member.embed.describe()}; fit every member on the same encoder settings."
            )
    return None if seen is None else seen[1]
