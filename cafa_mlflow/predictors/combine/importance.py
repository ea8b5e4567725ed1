"""Permutation importance of the learned ensemble's features on a sample of (protein, candidate term) pairs: how
much the average precision of its pair scores falls when one feature's column is shuffled (scikit-learn's
`permutation_importance`; HistGradientBoosting has no split-gain importances)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance

from cafa_mlflow.predictors.combine.features import Pairs


def pair_importances(model: object, pairs: Pairs, y: np.ndarray, n_pairs: int, repeats: int, seed: int) -> pd.DataFrame:
    """One row per feature: mean and std of the drop in average precision over `repeats` shuffles, on a seeded
    sample of at most `n_pairs` pairs (labels `y`), most important first."""
    rng = np.random.default_rng(seed)
    pick = np.arange(len(y)) if len(y) <= n_pairs else np.sort(rng.choice(len(y), n_pairs, replace=False))
    found = permutation_importance(
        model, pairs.X[pick], np.asarray(y)[pick], scoring="average_precision", n_repeats=repeats, random_state=seed
    )
    table = pd.DataFrame({"feature": pairs.names, "importance": found.importances_mean, "std": found.importances_std})
    return table.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)
