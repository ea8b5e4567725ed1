"""The learned stacker: gradient-boosted trees over (protein, candidate term) pairs.

fit() trains a HistGradientBoostingClassifier on out-of-fold pairs (label: the protein carries the
term), keeping every positive and a seeded random share of negatives (`neg_fraction`; the predicted
probabilities are corrected back to the full negative rate). Saved as model.joblib + config.json.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from cafa_mlflow.errors import InputError, MissingWeightsError, NotFittedError
from cafa_mlflow.io.readback import read_json
from cafa_mlflow.io.text import atomic_write, write_json
from cafa_mlflow.predictors.combine.features import Pairs

SETTINGS = ("max_iter", "learning_rate", "max_leaf_nodes", "min_samples_leaf", "l2_regularization")
SETTINGS += ("neg_fraction", "max_rows", "seed", "ia_weight_floor")  # what from_settings reads


class Stacker:
    """fit(pairs, y) / predict_pairs(pairs) / save(folder) / load(folder); settings come from params.yaml's
    stacker block (`from_settings`), which owns their defaults."""

    @classmethod
    def from_settings(cls, settings: Any) -> Stacker:
        """An unfitted Stacker from anything carrying the SETTINGS attributes (the stacker block)."""
        return cls(**{k: getattr(settings, k) for k in SETTINGS})

    def __init__(
        self,
        *,
        max_iter: int,
        learning_rate: float,
        max_leaf_nodes: int,
        min_samples_leaf: int,
        l2_regularization: float,
        neg_fraction: float,
        max_rows: int,
        seed: int,
        ia_weight_floor: float | None,
    ) -> None:
        """ia_weight_floor: pairs weigh max(IA of the term, floor) in the loss, as terms weigh in the
        weighted F-max (None = unweighted)."""
        self.params = {
            "max_iter": int(max_iter),
            "learning_rate": float(learning_rate),
            "max_leaf_nodes": int(max_leaf_nodes),
            "min_samples_leaf": int(min_samples_leaf),
            "l2_regularization": float(l2_regularization),
        }
        self.neg_fraction, self.max_rows, self.seed = float(neg_fraction), int(max_rows), int(seed)
        self.ia_weight_floor = None if ia_weight_floor is None else float(ia_weight_floor)
        self.model: HistGradientBoostingClassifier | None = None
        self.feature_names: list[str] | None = None
        self.keep_rate = 1.0

    def fit(self, pairs: Pairs, y: np.ndarray) -> Stacker:
        """Train on pairs with 0/1 labels y; subsamples negatives (and rows beyond max_rows)."""
        rng = np.random.default_rng(self.seed)
        y = np.asarray(y, dtype=bool)
        rate = self.neg_fraction
        n_keep = y.sum() + rate * (~y).sum()
        if n_keep > self.max_rows:
            rate = max((self.max_rows - y.sum()) / max((~y).sum(), 1), 0.01)
        keep = y | (rng.random(len(y)) < rate)
        self.keep_rate = float(rate)
        self.feature_names = list(pairs.names)
        self.model = HistGradientBoostingClassifier(
            **self.params,
            early_stopping=False,
            random_state=self.seed,
            categorical_features=[self.feature_names.index("aspect")],
        )
        weight = None
        if self.ia_weight_floor is not None:
            weight = np.maximum(pairs.X[keep, self.feature_names.index("ia")], self.ia_weight_floor)
        self.model.fit(pairs.X[keep], y[keep], sample_weight=weight)
        return self

    def predict_pairs(self, pairs: Pairs) -> np.ndarray:
        """Probability per pair, corrected for the negative subsampling used in fit."""
        if self.model is None:
            raise NotFittedError("Stacker.predict_pairs")
        if list(pairs.names) != self.feature_names:
            raise InputError(
                f"the stacker was fitted on features {self.feature_names}, this version computes {pairs.names}; "
                "fit the ensemble again (cafa ensemble) with this version."
            )
        p = self.model.predict_proba(pairs.X)[:, 1]
        odds = p / np.maximum(1.0 - p, 1e-9) * self.keep_rate  # undo the negative subsampling
        return (odds / (1.0 + odds)).astype(np.float32)

    def save(self, folder: str | os.PathLike) -> Path:
        """model.joblib (the fitted sklearn model, trusted files only) and config.json."""
        if self.model is None:
            raise NotFittedError("Stacker.save")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / "model.joblib", "wb") as handle:
            joblib.dump(self.model, handle)
        config = {
            "kind": "stacker",
            **self.params,
            "neg_fraction": self.neg_fraction,
            "max_rows": self.max_rows,
            "seed": self.seed,
            "ia_weight_floor": self.ia_weight_floor,
            "keep_rate": self.keep_rate,
            "feature_names": self.feature_names,
        }
        write_json(folder / "config.json", config)
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Stacker:
        folder = Path(folder)
        if not (folder / "model.joblib").is_file():
            raise MissingWeightsError(f"{folder}: no model.joblib; fit and save a stacker there first.")
        config = read_json(folder / "config.json")
        self = cls(**{k: config[k] for k in SETTINGS})
        self.keep_rate, self.feature_names = config["keep_rate"], config["feature_names"]
        self.model = joblib.load(folder / "model.joblib")
        return self
