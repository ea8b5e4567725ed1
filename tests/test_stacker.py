"""Stacker: candidate pairs, negative subsampling corrected back to the base rate."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
from predictor_fixtures import TERMS
from test_stacked import SETTINGS

from cafa_mlflow.errors import InputError
from cafa_mlflow.predictors.combine.features import Pairs, candidates, gather
from cafa_mlflow.predictors.combine.stacker import Stacker

BP, BP1, BP2, CC, CC3, MF, MF4, MF5 = TERMS
# leaf sets (propagated below); proteins of a family share them and hit each other
FAMILIES = [[BP2, CC3], [BP1, MF5], [MF4, CC3], [BP2, MF5]]


def test_gather_and_candidates():
    m = sp.csr_matrix(np.array([[0, 0.5, 0], [0.2, 0, 0.9]], np.float32))
    np.testing.assert_allclose(gather(m, np.array([0, 1, 1, 0]), np.array([1, 2, 1, 0])), [0.5, 0.9, 0, 0])
    rows, cols = candidates({"h": m}, np.array([[0.0, 0.0, 0.3]]), np.zeros(2, int), 0.3, 0.25)
    assert list(zip(rows.tolist(), cols.tolist())) == [(0, 1), (0, 2), (1, 2)]


def test_stacker_subsamples_negatives_and_corrects_probabilities():
    rng = np.random.default_rng(0)

    x = rng.random((4000, 2)).astype(np.float32)
    x[:, 1] = rng.integers(0, 3, 4000)
    y = rng.random(4000) < 0.1
    pairs = Pairs(np.arange(4000), np.zeros(4000, int), x, ["score", "aspect"])
    settings = {**SETTINGS, "max_iter": 5, "learning_rate": 0.1, "max_leaf_nodes": 63, "min_samples_leaf": 100}
    model = Stacker.from_settings(SimpleNamespace(**{**settings, "neg_fraction": 0.25})).fit(pairs, y)
    assert model.keep_rate == 0.25
    p = model.predict_pairs(pairs)
    assert abs(p.mean() - y.mean()) < 0.03  # corrected back to the base rate, not the subsampled 0.3
    old = Pairs(pairs.rows, pairs.cols, np.column_stack([x, x[:, :1]]), ["score", "aspect", "freq"])
    with pytest.raises(InputError, match="fit the ensemble again"):
        model.predict_pairs(old)  # columns other than the fitted ones (a model saved by another version)
