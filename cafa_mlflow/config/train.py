"""The `train:` block of params.yaml as a typed, validated dataclass (no defaults here: params.yaml owns them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from cafa_mlflow.config.blocks import Block, choice
from cafa_mlflow.errors import ConfigError

MODELS = ("simple", "multitask", "chunk_attention", "finetune")
LOSSES = ("bce", "weighted_bce", "focal")
SCHEDULERS = ("none", "plateau", "cosine")
GROUP_BY = ("none", "sequence", "groups")


@dataclass(frozen=True)
class TrainParams(Block):
    """All hyper-parameters of a neural predictor; field names are the keys of params.yaml's `train:` block."""

    section: ClassVar[str] = "train"
    model: str = choice(*MODELS)
    hidden_dim: int
    head_hidden_dim: int
    dropout: float
    attention_dim: int
    loss: str = choice(*LOSSES)
    pos_weight_cap: float
    focal_alpha: float
    focal_gamma: float
    uncertainty_weighting: bool
    lr: float
    weight_decay: float
    batch_size: int
    grad_accum_steps: int
    max_epochs: int
    scheduler: str = choice(*SCHEDULERS)
    plateau_factor: float
    plateau_patience: int
    min_lr: float
    early_stopping_patience: int
    early_stopping_min_delta: float
    monitor: str
    monitor_mode: str = choice("max", "min")
    seed: int
    val_fraction: float
    val_seed: int
    val_group_by: str = choice(*GROUP_BY)
    min_score: float
    top_k: int | None
    inference_batch_size: int
    threshold_step: float
    threshold_per_term: bool
    threshold_min_support: int
    finetune_unfreeze_layers: int
    finetune_max_residues: int

    def validate(self) -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"params.yaml train.val_fraction={self.val_fraction}: use a value in (0, 1)")
        for key in ("hidden_dim", "batch_size", "grad_accum_steps", "max_epochs", "inference_batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"params.yaml train.{key}={getattr(self, key)}: must be >= 1")
        if not 0.0 < self.threshold_step < 1.0:
            raise ConfigError(f"params.yaml train.threshold_step={self.threshold_step}: use a value in (0, 1)")
        if self.finetune_unfreeze_layers < 0:
            raise ConfigError("params.yaml train.finetune_unfreeze_layers: must be >= 0 (0 = frozen encoder)")
