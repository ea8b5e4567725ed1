"""Classifiers mapping protein inputs to one logit per GO term (vocabulary column order)."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from cafa_mlflow.config.train_params import TrainParams
from cafa_mlflow.errors import ConfigError, InputError


def _mlp(in_dim: int, hidden_dim: int, out_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden_dim, out_dim))


class SimpleMLP(nn.Module):
    """Linear -> ReLU -> Dropout -> Linear over all terms."""

    def __init__(self, in_dim: int, hidden_dim: int, n_terms: int, dropout: float) -> None:
        super().__init__()
        self.net = _mlp(in_dim, hidden_dim, n_terms, dropout)

    def set_output_bias(self, bias: torch.Tensor) -> None:
        with torch.no_grad():
            self.net[-1].bias.copy_(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MultitaskMLP(nn.Module):
    """Shared trunk, one head per aspect; head outputs are scattered back into vocabulary column order."""

    def __init__(
        self, in_dim: int, hidden_dim: int, head_hidden_dim: int, term_aspect: np.ndarray, dropout: float
    ) -> None:
        super().__init__()
        term_aspect = np.asarray(term_aspect).astype(str)
        self.aspects = sorted(set(term_aspect.tolist()))
        self.trunk = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Dropout(dropout))
        heads = {}
        columns = []
        for aspect in self.aspects:
            cols = np.flatnonzero(term_aspect == aspect)
            columns.append(cols)
            if head_hidden_dim > 0:
                heads[aspect] = _mlp(hidden_dim, head_hidden_dim, len(cols), dropout)
            else:
                heads[aspect] = nn.Linear(hidden_dim, len(cols))
        self.heads = nn.ModuleDict(heads)
        self.columns = dict(zip(self.aspects, columns))
        # concatenated head outputs [aspect0 cols, aspect1 cols, ...] -> vocabulary order
        order = np.concatenate(columns)
        self.register_buffer("inverse", torch.from_numpy(np.argsort(order)), persistent=False)

    def set_output_bias(self, bias: torch.Tensor) -> None:
        with torch.no_grad():
            for aspect, head in self.heads.items():
                last = head[-1] if isinstance(head, nn.Sequential) else head
                last.bias.copy_(bias[torch.from_numpy(self.columns[aspect])])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.trunk(x)
        out = torch.cat([self.heads[a](h) for a in self.aspects], dim=1)
        return out.index_select(1, self.inverse)


class ChunkAttention(nn.Module):
    """Learned attention pooling over a protein's chunk vectors (padding masked out), then multitask heads."""

    def __init__(
        self,
        in_dim: int,
        attention_dim: int,
        hidden_dim: int,
        head_hidden_dim: int,
        term_aspect: np.ndarray,
        dropout: float,
    ) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(in_dim, attention_dim), nn.Tanh(), nn.Linear(attention_dim, 1))
        self.classifier = MultitaskMLP(in_dim, hidden_dim, head_hidden_dim, term_aspect, dropout)

    def pool(self, chunks: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """B x C x D chunks, B x C mask (True = real) -> B x D attention-weighted mean."""
        logits = self.score(chunks).squeeze(-1).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(logits, dim=1)
        return torch.einsum("bc,bcd->bd", weights, chunks)

    def set_output_bias(self, bias: torch.Tensor) -> None:
        self.classifier.set_output_bias(bias)

    def forward(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        chunks, mask = inputs
        return self.classifier(self.pool(chunks, mask))


class FinetuneClassifier(nn.Module):
    """fair-esm ESM-2 encoder (mean over residues of the last layer, by cafa_mlflow.embed.encoder's forward) + MLP
    head, trained end to end.

    unfreeze_layers=0 freezes the whole encoder; k>0 trains the last k transformer layers and the final
    layer norm. Input: token batches from the alphabet's batch converter.
    """

    def __init__(
        self,
        esm_model: nn.Module,
        alphabet: Any,
        hidden_dim: int,
        n_terms: int,
        dropout: float,
        unfreeze_layers: int,
        max_residues: int,
    ) -> None:
        super().__init__()
        if unfreeze_layers > esm_model.num_layers:
            raise ConfigError(
                f"params.yaml train.finetune_unfreeze_layers={unfreeze_layers} exceeds the model's "
                f"{esm_model.num_layers} layers; use 0..{esm_model.num_layers}"
            )
        self.esm = esm_model
        self.alphabet = alphabet
        self.max_residues = max_residues
        self.unfreeze_layers = unfreeze_layers
        self.head = _mlp(esm_model.embed_dim, hidden_dim, n_terms, dropout)
        for p in self.esm.parameters():
            p.requires_grad_(False)
        if unfreeze_layers > 0:
            for layer in self.esm.layers[-unfreeze_layers:]:
                layer.requires_grad_(True)
            self.esm.emb_layer_norm_after.requires_grad_(True)

    def set_output_bias(self, bias: torch.Tensor) -> None:
        with torch.no_grad():
            self.head[-1].bias.copy_(bias)

    def esm_config(self) -> dict[str, Any]:
        """Enough to rebuild the encoder architecture (weights come from the state dict)."""
        return {
            "num_layers": self.esm.num_layers,
            "embed_dim": self.esm.embed_dim,
            "attention_heads": self.esm.attention_heads,
            "token_dropout": self.esm.token_dropout,
        }

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        from cafa_mlflow.embed.encoder import representations  # the embed package imports fair-esm: only here

        last = self.esm.num_layers
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.unfreeze_layers > 0):
            reps = representations(self.esm, tokens, last)  # fair-esm's weights, our fused-attention forward
        residue = (
            (
                (tokens != self.alphabet.padding_idx)
                & (tokens != self.alphabet.cls_idx)
                & (tokens != self.alphabet.eos_idx)
            )
            .unsqueeze(-1)
            .to(reps.dtype)
        )
        pooled = (reps * residue).sum(1) / residue.sum(1).clamp(min=1.0)
        return self.head(pooled)


def prior_logits(y: sp.csr_matrix) -> torch.Tensor:
    """logit of each term's label frequency (half a count for unseen or universal terms): the naive
    predictor as output bias. Starting from it keeps first-epoch scores near the term priors (sparse after
    min_score) instead of 0.5."""
    n = max(y.shape[0], 1)
    freq = np.clip(np.bincount(y.indices, minlength=y.shape[1]) / n, 0.5 / n, 1 - 0.5 / n)
    return torch.from_numpy(np.log(freq / (1 - freq)).astype(np.float32))


def build_model(
    params: TrainParams,
    in_dim: int | None,
    term_aspect: np.ndarray,
    esm_model: nn.Module | None = None,
    alphabet: Any = None,
) -> nn.Module:
    """The classifier named by params.model; `finetune` needs esm_model + alphabet, the others in_dim."""
    n_terms = len(term_aspect)
    if params.model == "finetune":
        if esm_model is None or alphabet is None:
            raise InputError("model 'finetune' needs an ESM-2 model and its alphabet (fair-esm)")
        return FinetuneClassifier(
            esm_model,
            alphabet,
            params.hidden_dim,
            n_terms,
            params.dropout,
            params.finetune_unfreeze_layers,
            params.finetune_max_residues,
        )
    if in_dim is None:
        raise InputError(f"model {params.model!r} needs the embedding dimension")
    if params.model == "simple":
        return SimpleMLP(in_dim, params.hidden_dim, n_terms, params.dropout)
    if params.model == "multitask":
        return MultitaskMLP(in_dim, params.hidden_dim, params.head_hidden_dim, term_aspect, params.dropout)
    return ChunkAttention(
        in_dim, params.attention_dim, params.hidden_dim, params.head_hidden_dim, term_aspect, params.dropout
    )
