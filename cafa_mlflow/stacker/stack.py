"""The whole learned layer: cross-fitted homology + naive (+ optional members) -> stacker -> scores.

`fit_stack` learns from the training pool only: out-of-fold homology features from the pool's
all-vs-all hits, fold-wise naive priors, optional out-of-fold predictions of other members (kNN,
neural), then the Stacker on their candidate pairs. `FittedStack.predict` scores new proteins from
their DIAMOND hits into the whole pool (plus the same optional members fitted on the whole pool).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cafa_mlflow.crossfit import fold_frequencies, homology_features, oof_homology_features
from cafa_mlflow.go.ontology import Ontology
from cafa_mlflow.io.text import atomic_write, write_json
from cafa_mlflow.labels import TermMatrix, load_term_matrix, save_term_matrix
from cafa_mlflow.predictors.naive import term_frequencies
from cafa_mlflow.stacker.features import Pairs, gather, pair_features, term_info
from cafa_mlflow.stacker.model import Stacker
from cafa_mlflow.transfer import aspect_root_columns


@dataclass
class StackSettings:
    """params.yaml `stacker:` block (model hyperparameters go to Stacker)."""

    member_floor: float = 0.01
    naive_floor: float = 0.05
    max_target_seqs: int = 0
    max_iter: int = 100
    learning_rate: float = 0.1
    max_leaf_nodes: int = 63
    min_samples_leaf: int = 100
    l2_regularization: float = 0.0
    neg_fraction: float = 0.5
    max_rows: int = 1_000_000
    seed: int = 0
    ia_weight_floor: float | None = 0.1

    def stacker(self) -> Stacker:
        return Stacker.from_settings(self)


@dataclass
class StackData:
    """Features of one protein set: members' scores, homology statistics, naive rows and row choice."""

    ids: list[str]
    members: dict[str, sp.csr_matrix]
    hom: dict
    naive_rows: np.ndarray
    which: np.ndarray
    lengths: np.ndarray

    def pairs(self, info, settings: StackSettings) -> Pairs:
        return pair_features(
            self.members,
            self.hom,
            self.naive_rows,
            self.which,
            info,
            self.lengths,
            settings.member_floor,
            settings.naive_floor,
        )


def _member_mats(hom: dict, extra: Mapping[str, TermMatrix] | None, ids: Sequence[str], terms: Sequence[str]):
    mats = {"homology": hom["score"]}
    for name, tm in (extra or {}).items():
        mats[name] = tm.reindex(proteins=list(ids), terms=list(terms)).matrix
    return mats


class FittedStack:
    """Pool labels, naive row, term features and the fitted Stacker; predicts new proteins."""

    def __init__(
        self,
        labels: TermMatrix,
        naive_row: np.ndarray,
        ontology: Ontology,
        ia: Mapping[str, float],
        stacker: Stacker,
        settings: StackSettings,
        members: Sequence[str] = (),
    ) -> None:
        self.labels, self.naive_row, self.ontology, self.ia = labels, naive_row, ontology, dict(ia)
        self.stacker, self.settings, self.members = stacker, settings, list(members)
        self.root_col = aspect_root_columns(labels.terms, ontology)
        self.info = term_info(labels.terms, ontology, self.ia)

    def data(
        self, ids: Sequence[str], hits: pd.DataFrame, lengths: np.ndarray, extra: Mapping[str, TermMatrix] | None = None
    ) -> StackData:
        hom = homology_features(hits, ids, self.labels, self.root_col, self.settings.max_target_seqs)
        mats = _member_mats(hom, extra, ids, self.labels.terms)
        return StackData(list(ids), mats, hom, self.naive_row[None, :], np.zeros(len(ids), np.int64), lengths)

    def predict(
        self, ids: Sequence[str], hits: pd.DataFrame, lengths: np.ndarray, extra: Mapping[str, TermMatrix] | None = None
    ) -> TermMatrix:
        """GO-consistent scores of new proteins from their hits into the pool (self-hits dropped)."""
        d = self.data(ids, hits, lengths, extra)
        return self.stacker.predict(d.pairs(self.info, self.settings), d.ids, self.labels.terms, self.ontology)

    def save(self, folder: str | os.PathLike) -> Path:
        folder = Path(folder)
        self.stacker.save(folder / "stacker")
        save_term_matrix(folder / "labels.npz", self.labels)
        with atomic_write(folder / "naive_row.npy", "wb") as handle:
            np.save(handle, self.naive_row)
        write_json(
            folder / "stack.json",
            {"settings": vars(self.settings), "members": self.members, "ia": self.ia},
            indent=None,
        )
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, ontology: Ontology) -> FittedStack:
        folder = Path(folder)
        config = json.loads((folder / "stack.json").read_text())
        return cls(
            load_term_matrix(folder / "labels.npz"),
            np.load(folder / "naive_row.npy"),
            ontology,
            config["ia"],
            Stacker.load(folder / "stacker"),
            StackSettings(**config["settings"]),
            config["members"],
        )


def oof_data(
    labels: TermMatrix,
    lengths: np.ndarray,
    pool_hits: pd.DataFrame,
    folds: np.ndarray,
    ontology: Ontology,
    settings: StackSettings,
    extra_oof: Mapping[str, TermMatrix] | None = None,
) -> StackData:
    """Out-of-fold StackData of the whole pool (homology from hits into other folds, fold-wise naive)."""
    root_col = aspect_root_columns(labels.terms, ontology)
    hom = oof_homology_features(pool_hits, labels, folds, root_col, settings.max_target_seqs)
    aspects = ontology.aspect[[ontology.index[t] for t in labels.terms]]
    rows = fold_frequencies(labels.matrix, folds, aspects)
    return StackData(
        labels.proteins,
        _member_mats(hom, extra_oof, labels.proteins, labels.terms),
        hom,
        rows,
        np.asarray(folds),
        lengths,
    )


def fit_stack(
    labels: TermMatrix,
    lengths: np.ndarray,
    pool_hits: pd.DataFrame,
    folds: np.ndarray,
    ontology: Ontology,
    ia: Mapping[str, float],
    settings: StackSettings,
    extra_oof: Mapping[str, TermMatrix] | None = None,
    oof: StackData | None = None,
) -> tuple[FittedStack, StackData]:
    """Fit the stacker on out-of-fold pairs of the pool; returns the fitted stack and the OOF data.

    labels: pool x terms propagated 0/1 over every term carried in the pool; pool_hits: all-vs-all
    DIAMOND hits of the pool; folds: `folds.make_folds`; extra_oof: other members' OOF predictions
    (their full fits must then be passed to predict as `extra` under the same names)."""
    oof = oof or oof_data(labels, lengths, pool_hits, folds, ontology, settings, extra_oof)
    aspects = ontology.aspect[[ontology.index[t] for t in labels.terms]]
    full_row = term_frequencies(labels.matrix, aspects, "aspect").astype(np.float32)
    stack = FittedStack(labels, full_row, ontology, ia, settings.stacker(), settings, list(extra_oof or ()))
    pairs = oof.pairs(stack.info, settings)
    stack.stacker.fit(pairs, gather(labels.matrix, pairs.rows, pairs.cols) > 0)
    return stack, oof
