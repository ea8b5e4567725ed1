"""The training loop: mini-batches from sparse labels, gradient accumulation, LR schedulers, early stopping
on a validation metric with best weights restored, and per-epoch callbacks (logging, pruning).

Callbacks are plain callables `cb(epoch, metrics) -> bool | None` (or objects with `on_epoch_end`).
Returning True stops training after this epoch; raising stops it at once (best weights are restored
first). For optuna-style pruning raise `TrainingPruned` (see `PruningCallback`); the caller translates
it, e.g. into optuna.TrialPruned. This module never imports MLflow or optuna.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from cafa_mlflow.config.train_params import TrainParams
from cafa_mlflow.errors import ConfigError
from cafa_mlflow.predictors.neural.data import Inputs, iter_batches, label_batch, to_device
from cafa_mlflow.predictors.neural.scoring import evaluate_batches

ValMetric = Callable[[sp.csr_matrix], dict]
Callback = Callable[[int, dict], bool | None]


class TrainingPruned(Exception):
    """Raised by a callback to stop a trial early (e.g. optuna's should_prune())."""

    def __init__(self, epoch: int, value: float) -> None:
        super().__init__(f"pruned at epoch {epoch} (monitored value {value})")
        self.epoch = epoch
        self.value = value


class PruningCallback:
    """Generic pruning hook: report(epoch, metrics[monitor]); raise TrainingPruned if should_prune().

    `report` is called as report(value, epoch), optuna's order, so with optuna pass
    PruningCallback(trial.report, trial.should_prune, "val_f_w_mean") and catch TrainingPruned.
    """

    def __init__(self, report: Callable[[float, int], Any], should_prune: Callable[[], bool], monitor: str) -> None:
        self.report, self.should_prune, self.monitor = report, should_prune, monitor

    def __call__(self, epoch: int, metrics: dict) -> None:
        value = metrics[self.monitor]
        self.report(value, epoch)  # optuna's signature: trial.report(value, step)
        if self.should_prune():
            raise TrainingPruned(epoch, value)


@dataclass
class TrainResult:
    best_epoch: int  # 1-based; 0 if no epoch finished
    best_value: float
    history: list[dict] = field(default_factory=list)  # one metrics dict per epoch
    stopped_early: bool = False


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch; prefer deterministic cuDNN (CPU kernels here are deterministic)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def _trainable_state(modules: Sequence[nn.Module]) -> dict[str, torch.Tensor]:
    """Clones of everything training can change (trainable parameters and buffers); frozen weights skipped."""
    state = {}
    for i, m in enumerate(modules):
        for name, t in chain(((n, p) for n, p in m.named_parameters() if p.requires_grad), m.named_buffers()):
            if t is not None:
                state[f"{i}.{name}"] = t.detach().clone()
    return state


@torch.no_grad()
def _restore(modules: Sequence[nn.Module], state: dict[str, torch.Tensor]) -> None:
    for i, m in enumerate(modules):
        for name, t in chain(m.named_parameters(), m.named_buffers()):
            key = f"{i}.{name}"
            if key in state:
                t.copy_(state[key])


def _improved(value: float, best: float, mode: str, min_delta: float) -> bool:
    if math.isnan(value):
        return False
    if math.isnan(best):
        return True
    return value > best + min_delta if mode == "max" else value < best - min_delta


def _scheduler(opt: torch.optim.Optimizer, params: TrainParams) -> Any:
    if params.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt,
            mode=params.monitor_mode,
            factor=params.plateau_factor,
            patience=params.plateau_patience,
            min_lr=params.min_lr,
        )
    if params.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=params.max_epochs, eta_min=params.min_lr)
    return None


def train_epoch(
    model: nn.Module,
    loss_fn: nn.Module,
    opt: torch.optim.Optimizer,
    inputs: Inputs,
    y: sp.csr_matrix,
    batch_size: int,
    grad_accum_steps: int,
    rng: np.random.Generator,
) -> float:
    """One pass over shuffled batches; the optimizer steps every grad_accum_steps batches. Mean train loss."""
    model.train()
    device = next(model.parameters()).device
    opt.zero_grad(set_to_none=True)
    batches = list(iter_batches(len(inputs), batch_size, rng))
    total = 0.0
    for step, idx in enumerate(batches):
        logits = model(to_device(inputs.batch(idx), device))
        loss = loss_fn(logits, label_batch(y, idx).to(device))
        (loss / grad_accum_steps).backward()
        total += float(loss.detach()) * len(idx)
        if (step + 1) % grad_accum_steps == 0 or step + 1 == len(batches):
            opt.step()
            opt.zero_grad(set_to_none=True)
    return total / max(len(inputs), 1)


def _one_epoch(
    model: nn.Module,
    loss_fn: nn.Module,
    opt: torch.optim.Optimizer,
    train: tuple[Inputs, sp.csr_matrix],
    val: tuple[Inputs, sp.csr_matrix],
    params: TrainParams,
    rng: np.random.Generator,
    val_metric: ValMetric | None,
) -> dict[str, float]:
    """Train one epoch and evaluate: train_loss, val_loss, lr, val_<key> of val_metric, log_var_<aspect>."""
    lr = opt.param_groups[0]["lr"]
    train_loss = train_epoch(model, loss_fn, opt, *train, params.batch_size, params.grad_accum_steps, rng)
    val_loss, scores = evaluate_batches(
        model, *val, loss_fn, params.inference_batch_size, params.min_score, keep_scores=val_metric is not None
    )
    metrics = {"train_loss": train_loss, "val_loss": val_loss, "lr": lr}
    if val_metric is not None:
        metrics.update({f"val_{k}": float(v) for k, v in val_metric(scores).items()})
    if getattr(loss_fn, "log_vars", None) is not None:
        log_vars = loss_fn.log_vars.detach().tolist()
        metrics.update({f"log_var_{a}": v for a, v in zip(loss_fn.aspects, log_vars)})
    if params.monitor not in metrics:
        raise ConfigError(
            f"params.yaml train.monitor={params.monitor!r} is not among the epoch metrics "
            f"{sorted(metrics)}; pick one of them"
        )
    return metrics


def fit_model(
    model: nn.Module,
    loss_fn: nn.Module,
    train_inputs: Inputs,
    y_train: sp.csr_matrix,
    val_inputs: Inputs,
    y_val: sp.csr_matrix,
    params: TrainParams,
    val_metric: ValMetric | None = None,
    callbacks: Sequence[Any] = (),
) -> TrainResult:
    """Train `model` in place; returns the history. Best weights (by params.monitor) are restored at the end,
    also when a callback raises. Metrics per epoch: train_loss, val_loss, lr, val_<key> for each key of
    val_metric(scores CSR >= params.min_score), log_var_<aspect> with uncertainty weighting."""
    seed_everything(params.seed)
    rng = np.random.default_rng(params.seed)
    trainable = [p for p in chain(model.parameters(), loss_fn.parameters()) if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=params.lr, weight_decay=params.weight_decay, fused=params.fused_optimizer)
    scheduler = _scheduler(opt, params)
    fns = [getattr(cb, "on_epoch_end", cb) for cb in callbacks]
    modules = [model, loss_fn]
    result = TrainResult(best_epoch=0, best_value=math.nan)
    best_state: dict | None = None
    try:
        for epoch in range(1, params.max_epochs + 1):
            metrics = _one_epoch(
                model, loss_fn, opt, (train_inputs, y_train), (val_inputs, y_val), params, rng, val_metric
            )
            value = metrics[params.monitor]
            result.history.append(metrics)
            if _improved(value, result.best_value, params.monitor_mode, params.early_stopping_min_delta):
                result.best_epoch, result.best_value = epoch, value
                best_state = _trainable_state(modules)
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(value)
            elif scheduler is not None:
                scheduler.step()
            stop = False
            for fn in fns:
                stop = bool(fn(epoch, dict(metrics))) or stop
            patience = params.early_stopping_patience
            if stop or (patience > 0 and epoch - result.best_epoch >= patience):
                result.stopped_early = epoch < params.max_epochs
                break
    finally:
        if best_state is not None:
            _restore(modules, best_state)
    return result
