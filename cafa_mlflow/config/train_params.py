"""The `train:` block of params.yaml as a typed, validated dataclass (no defaults here: params.yaml owns them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from cafa_mlflow.config.blocks import Block, bounds, choice

MODELS = ("simple", "multitask", "chunk_attention", "finetune")
LOSSES = ("bce", "weighted_bce", "focal")
SCHEDULERS = ("none", "plateau", "cosine")
GROUP_BY = ("none", "sequence", "groups")


@dataclass(frozen=True)
class TrainParams(Block):
    """All hyper-parameters of a neural predictor; field names are the keys of params.yaml's `train:` block."""

    section: ClassVar[str] = "train"
    model: str = choice(*MODELS)
    hidden_dim: int = bounds(ge=1)
    head_hidden_dim: int = bounds(ge=0)
    dropout: float = bounds(ge=0, lt=1)
    attention_dim: int = bounds(ge=1)
    loss: str = choice(*LOSSES)
    pos_weight_cap: float = bounds(gt=0)
    focal_alpha: float = bounds(ge=0, le=1)
    focal_gamma: float = bounds(ge=0)
    uncertainty_weighting: bool
    lr: float = bounds(gt=0)
    weight_decay: float = bounds(ge=0)
    fused_optimizer: bool
    batch_size: int = bounds(ge=1)
    grad_accum_steps: int = bounds(ge=1)
    max_epochs: int = bounds(ge=1)
    scheduler: str = choice(*SCHEDULERS)
    plateau_factor: float = bounds(gt=0, lt=1)
    plateau_patience: int = bounds(ge=0)
    min_lr: float = bounds(ge=0)
    early_stopping_patience: int = bounds()
    early_stopping_min_delta: float = bounds(ge=0)
    monitor: str
    monitor_mode: str = choice("max", "min")
    seed: int = bounds(ge=0)
    val_fraction: float = bounds(gt=0, lt=1)
    val_seed: int = bounds(ge=0)
    val_group_by: str = choice(*GROUP_BY)
    min_score: float = bounds(ge=0, lt=1)
    top_k: int | None = bounds(ge=1)
    inference_batch_size: int = bounds(ge=1)
    threshold_step: float = bounds(gt=0, lt=1)
    threshold_per_term: bool
    threshold_min_support: int = bounds(ge=0)
    finetune_unfreeze_layers: int = bounds(ge=0)
    finetune_max_residues: int = bounds(ge=1)
