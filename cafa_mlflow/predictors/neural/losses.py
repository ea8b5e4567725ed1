"""Multi-label losses over logits (B x T): bce, weighted_bce, focal, with optional uncertainty weighting.

Uncertainty weighting (Kendall, Gal & Cipolla 2018) is a switch (`uncertainty_weighting: true`) that wraps
any of the three losses: the loss is computed separately over each aspect's columns and combined as
sum_a exp(-s_a) * L_a + 0.5 * s_a, with s_a = log sigma_a^2 learnable (classification form, 1/sigma^2 * L +
log sigma). Without it the loss is the plain mean over all B x T cells.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from cafa_mlflow.config.train_params import TrainParams


def pos_weights(y: sp.csr_matrix, cap: float) -> np.ndarray:
    """Per-term positive weight = negatives / positives (inverse frequency), capped at `cap`, >= 1.

    Terms without positives get `cap` (they only ever contribute negatives, so the value is moot).
    """
    n = y.shape[0]
    pos = np.bincount(y.indices, minlength=y.shape[1]).astype(np.float64)
    with np.errstate(divide="ignore"):
        w = np.where(pos > 0, (n - pos) / np.maximum(pos, 1.0), cap)
    return np.clip(w, 1.0, cap).astype(np.float32)


class MultiLabelLoss(nn.Module):
    """Elementwise loss cells (B x T) reduced to a scalar; optionally uncertainty-weighted per aspect."""

    def __init__(
        self,
        kind: str,
        term_aspect: np.ndarray,
        pos_weight: np.ndarray | None,
        focal_alpha: float,
        focal_gamma: float,
        uncertainty_weighting: bool,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        pw = torch.as_tensor(pos_weight, dtype=torch.float32) if pos_weight is not None else None
        self.register_buffer("pos_weight", pw, persistent=False)
        term_aspect = np.asarray(term_aspect).astype(str)
        self.aspects = sorted(set(term_aspect.tolist()))
        for a in self.aspects:
            self.register_buffer(f"cols_{a}", torch.from_numpy(np.flatnonzero(term_aspect == a)), persistent=False)
        self.log_vars = nn.Parameter(torch.zeros(len(self.aspects))) if uncertainty_weighting else None

    def cells(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.kind == "bce":
            return F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        if self.kind == "weighted_bce":
            return F.binary_cross_entropy_with_logits(logits, target, pos_weight=self.pos_weight, reduction="none")
        # focal (Lin et al. 2017): alpha_t * (1 - p_t)^gamma * BCE
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        p = torch.sigmoid(logits)
        p_t = p * target + (1 - p) * (1 - target)
        alpha_t = self.focal_alpha * target + (1 - self.focal_alpha) * (1 - target)
        return alpha_t * (1 - p_t).pow(self.focal_gamma) * bce

    def aspect_losses(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean loss per aspect (in self.aspects order)."""
        cells = self.cells(logits, target)
        return torch.stack([cells.index_select(1, getattr(self, f"cols_{a}")).mean() for a in self.aspects])

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.log_vars is None:
            return self.cells(logits, target).mean()
        losses = self.aspect_losses(logits, target)
        return (torch.exp(-self.log_vars) * losses + 0.5 * self.log_vars).sum()


def build_loss(params: TrainParams, y_train: sp.csr_matrix, term_aspect: np.ndarray) -> MultiLabelLoss:
    """The loss named by params.loss; weighted_bce takes capped inverse-frequency weights from y_train."""
    pw = pos_weights(y_train, params.pos_weight_cap) if params.loss == "weighted_bce" else None
    return MultiLabelLoss(
        params.loss, term_aspect, pw, params.focal_alpha, params.focal_gamma, params.uncertainty_weighting
    )
