import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from neural_fixtures import ASPECTS, params, tiny_data

from cafa_mlflow.predictors.neural.data import DenseInputs
from cafa_mlflow.predictors.neural.losses import MultiLabelLoss, build_loss, pos_weights
from cafa_mlflow.predictors.neural.models import build_model
from cafa_mlflow.predictors.neural.training import fit_model


@pytest.mark.parametrize("loss,uw", [("bce", False), ("weighted_bce", False), ("focal", False), ("bce", True)])
def test_every_loss_trains(loss, uw):
    x, y = tiny_data()
    p = params(model="multitask", loss=loss, uncertainty_weighting=uw, max_epochs=6, monitor="train_loss")
    model = build_model(p, 16, ASPECTS)
    loss_fn = build_loss(p, y, ASPECTS)
    result = fit_model(model, loss_fn, DenseInputs(x), y, DenseInputs(x), y, p)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.8 * losses[0]


def test_pos_weights_inverse_frequency_capped():
    y = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 0], [0, 1, 0], [0, 0, 0]], dtype=np.float32))
    np.testing.assert_allclose(pos_weights(y, cap=2.0), [2.0, 1.0, 2.0])  # 3/1 capped, 0/4 -> 1, no positives -> cap
    np.testing.assert_allclose(pos_weights(y, cap=10.0), [3.0, 1.0, 10.0])


def test_loss_values_match_definitions():
    torch.manual_seed(0)
    logits, target = torch.randn(4, 12), (torch.rand(4, 12) > 0.5).float()
    bce = F.binary_cross_entropy_with_logits(logits, target)
    plain = MultiLabelLoss("bce", ASPECTS, None, 0.25, 2.0, False)
    torch.testing.assert_close(plain(logits, target), bce)
    focal0 = MultiLabelLoss("focal", ASPECTS, None, 0.5, 0.0, False)  # gamma 0, alpha 0.5 -> BCE / 2
    torch.testing.assert_close(focal0(logits, target), bce / 2)
    w = MultiLabelLoss("weighted_bce", ASPECTS, np.full(12, 3.0, dtype=np.float32), 0.25, 2.0, False)
    expected = F.binary_cross_entropy_with_logits(logits, target, pos_weight=torch.full((12,), 3.0))
    torch.testing.assert_close(w(logits, target), expected)
    uw = MultiLabelLoss("bce", ASPECTS, None, 0.25, 2.0, True)  # log_vars start at 0: sum of aspect means
    torch.testing.assert_close(uw(logits, target), uw.aspect_losses(logits, target).sum())


def test_uncertainty_weights_are_learnable_and_change():
    x, y = tiny_data()
    p = params(model="multitask", uncertainty_weighting=True, max_epochs=3)
    model = build_model(p, 16, ASPECTS)
    loss_fn = build_loss(p, y, ASPECTS)
    assert loss_fn.log_vars.requires_grad and loss_fn.log_vars.shape == (3,)
    result = fit_model(model, loss_fn, DenseInputs(x), y, DenseInputs(x), y, p)
    assert not torch.equal(loss_fn.log_vars.detach(), torch.zeros(3))
    assert {"log_var_BPO", "log_var_CCO", "log_var_MFO"} <= set(result.history[-1])
    assert build_loss(params(), y, ASPECTS).log_vars is None
