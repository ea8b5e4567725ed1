import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from neural_fixtures import ASPECTS, params, tiny_data

from cafa_mlflow.errors import ConfigError
from cafa_mlflow.predictors.neural.data import DenseInputs
from cafa_mlflow.predictors.neural.losses import build_loss
from cafa_mlflow.predictors.neural.models import build_model
from cafa_mlflow.predictors.neural.scoring import evaluate_batches, predict_scores
from cafa_mlflow.predictors.neural.training import PruningCallback, TrainingPruned, fit_model


def _fit(p, val_metric=None, callbacks=(), seed_model=0):
    x, y = tiny_data()
    xv, yv = tiny_data(n=32, seed=1)
    torch.manual_seed(seed_model)
    model = build_model(p, 16, ASPECTS)
    result = fit_model(
        model, build_loss(p, y, ASPECTS), DenseInputs(x), y, DenseInputs(xv), yv, p, val_metric, callbacks
    )
    return model, result


class Scripted:
    """val_metric returning a fixed sequence of values, one per epoch."""

    def __init__(self, values):
        self.values, self.calls = list(values), []

    def __call__(self, scores):
        self.calls.append(scores)
        return {"score": self.values[len(self.calls) - 1]}


class Snapshots:
    def __init__(self, model):
        self.model, self.states = model, {}

    def __call__(self, epoch, metrics):
        self.states[epoch] = {k: v.clone() for k, v in self.model.state_dict().items()}


def _states_equal(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("scheduler", ["none", "plateau", "cosine"])
def test_every_scheduler_trains(scheduler):
    _, result = _fit(params(scheduler=scheduler, max_epochs=4, monitor="train_loss"))
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.9 * losses[0]


def test_cosine_schedule_values():
    p = params(scheduler="cosine", max_epochs=4, min_lr=1e-4, monitor="train_loss", early_stopping_patience=0)
    _, result = _fit(p)
    expected = [1e-4 + (1e-2 - 1e-4) * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    np.testing.assert_allclose([h["lr"] for h in result.history], expected, rtol=1e-9)


def test_plateau_reduces_lr_when_monitor_stalls():
    # train_loss falls, so with mode max it never improves after epoch 1
    p = params(
        scheduler="plateau",
        plateau_patience=0,
        plateau_factor=0.5,
        max_epochs=4,
        monitor="train_loss",
        monitor_mode="max",
        early_stopping_patience=0,
    )
    _, result = _fit(p)
    np.testing.assert_allclose([h["lr"] for h in result.history], [1e-2, 1e-2, 5e-3, 2.5e-3])


def test_early_stopping_restores_best_weights_exactly():
    p = params(max_epochs=10, monitor="val_score", monitor_mode="max", early_stopping_patience=3)
    x, y = tiny_data()
    torch.manual_seed(0)
    model = build_model(p, 16, ASPECTS)
    snaps = Snapshots(model)
    metric = Scripted([0.1, 0.5, 0.3, 0.2, 0.4, 0.9])
    result = fit_model(model, build_loss(p, y, ASPECTS), DenseInputs(x), y, DenseInputs(x), y, p, metric, [snaps])
    assert (result.best_epoch, result.best_value, result.stopped_early) == (2, 0.5, True)
    assert len(result.history) == 5  # epochs 3, 4, 5 without improvement
    assert _states_equal(model.state_dict(), snaps.states[2])
    assert not _states_equal(model.state_dict(), snaps.states[5])
    assert isinstance(metric.calls[0], sp.csr_matrix) and metric.calls[0].shape == y.shape


def test_pruning_callback_raises_and_restores_best():
    reported = []
    p = params(max_epochs=5, monitor="val_score", monitor_mode="max")
    x, y = tiny_data()
    model = build_model(p, 16, ASPECTS)
    snaps = Snapshots(model)
    prune = PruningCallback(lambda v, step: reported.append((step, v)), lambda: len(reported) >= 3, "val_score")
    with pytest.raises(TrainingPruned) as info:
        fit_model(
            model,
            build_loss(p, y, ASPECTS),
            DenseInputs(x),
            y,
            DenseInputs(x),
            y,
            p,
            Scripted([0.2, 0.7, 0.1, 0.9]),
            [snaps, prune],
        )
    assert info.value.epoch == 3 and reported == [(1, 0.2), (2, 0.7), (3, 0.1)]
    assert _states_equal(model.state_dict(), snaps.states[2])


def test_callback_flag_stops_and_gets_metrics():
    seen = []
    _, result = _fit(params(max_epochs=5), callbacks=[lambda e, m: seen.append((e, sorted(m))) or e == 2])
    assert len(result.history) == 2 and result.stopped_early
    assert seen[0] == (1, ["lr", "train_loss", "val_loss"])


def test_gradient_accumulation_matches_larger_batch():
    m1, _ = _fit(params(batch_size=32, grad_accum_steps=1, max_epochs=1, weight_decay=0.0))
    m2, _ = _fit(params(batch_size=16, grad_accum_steps=2, max_epochs=1, weight_decay=0.0))
    for a, b in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_seeded_runs_are_identical():
    m1, r1 = _fit(params(dropout=0.3, max_epochs=2))
    m2, r2 = _fit(params(dropout=0.3, max_epochs=2))
    assert r1.history == r2.history
    assert _states_equal(m1.state_dict(), m2.state_dict())


def test_unknown_monitor_is_config_error():
    with pytest.raises(ConfigError, match="val_f_w_mean"):
        _fit(params(monitor="val_f_w_mean"))


def test_loss_only_epochs_keep_the_loss_of_a_scored_pass():
    p = params(model="multitask", min_score=0.01)
    model, _ = _fit(p)
    xv, yv = tiny_data(n=32, seed=1)
    loss_fn = build_loss(p, yv, ASPECTS)
    scored_loss, scores = evaluate_batches(model, DenseInputs(xv), yv, loss_fn, 10, p.min_score)
    loss_only, none = evaluate_batches(model, DenseInputs(xv), yv, loss_fn, 10, p.min_score, keep_scores=False)
    assert none is None and loss_only == scored_loss
    expected = predict_scores(model, DenseInputs(xv), 10, p.min_score)
    assert scores.nnz > 0 and (scores != expected).nnz == 0


def test_a_fit_without_val_metric_has_the_history_of_one_that_scores_every_epoch():
    p = params(model="multitask", dropout=0.3, max_epochs=3, min_score=0.01)
    model, result = _fit(p)
    scored_model, scored = _fit(p, val_metric=lambda scores: {"nnz": float(scores.nnz)})
    assert [{k: h[k] for k in ("train_loss", "val_loss", "lr")} for h in scored.history] == result.history
    assert all(h["val_nnz"] > 0 for h in scored.history)
    assert _states_equal(model.state_dict(), scored_model.state_dict())


def test_fused_optimizer_trains_to_the_same_weights_within_rounding():
    """AdamW's fused kernel: another order of the same arithmetic, so weights agree to float rounding, not bits."""
    m1, r1 = _fit(params(max_epochs=2, fused_optimizer=False))
    m2, r2 = _fit(params(max_epochs=2, fused_optimizer=True))
    for a, b in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert r1.history[-1]["train_loss"] == pytest.approx(r2.history[-1]["train_loss"], rel=1e-4)
