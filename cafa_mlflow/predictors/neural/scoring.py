"""Scoring: dense float32 batches, or a sparse CSR score matrix that never materializes N x T densely."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from cafa_mlflow.predictors.neural.data import Inputs, iter_batches, label_batch, to_device


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def iter_logits(model: nn.Module, inputs: Inputs, batch_size: int) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """(row indices, B x T logits) in input order, model in eval mode (restored afterwards)."""
    was_training = model.training
    model.eval()
    device = _device(model)
    try:
        for idx in iter_batches(len(inputs), batch_size, rng=None):
            yield idx, model(to_device(inputs.batch(idx), device)).float()
    finally:
        model.train(was_training)


def iter_scores(model: nn.Module, inputs: Inputs, batch_size: int) -> Iterator[np.ndarray]:
    """Dense float32 sigmoid scores, one B x T array per batch, in input order."""
    for _, logits in iter_logits(model, inputs, batch_size):
        yield torch.sigmoid(logits).cpu().numpy()


def sparsify(scores: np.ndarray, min_score: float, top_k: int | None) -> sp.csr_matrix:
    """Keep scores >= min_score (and only each row's top_k if given) as float32 CSR."""
    keep = scores >= min_score
    if top_k is not None and top_k < scores.shape[1]:
        top = np.zeros_like(keep)
        np.put_along_axis(top, np.argpartition(-scores, top_k - 1, axis=1)[:, :top_k], True, axis=1)
        keep &= top
    rows, cols = np.nonzero(keep)
    return sp.csr_matrix((scores[rows, cols].astype(np.float32), (rows, cols)), shape=scores.shape)


def predict_scores(
    model: nn.Module, inputs: Inputs, batch_size: int, min_score: float, top_k: int | None = None
) -> sp.csr_matrix:
    """N x T CSR of sigmoid scores >= min_score (optionally top_k per protein). Only one batch is dense.

    min_score = 0.01 is lossless for the CAFA metric, whose thresholds start at 0.01.
    """
    parts = [sparsify(s, min_score, top_k) for s in iter_scores(model, inputs, batch_size)]
    if not parts:
        return sp.csr_matrix((0, 0), dtype=np.float32)
    return sp.vstack(parts, format="csr", dtype=np.float32)


def evaluate_batches(
    model: nn.Module,
    inputs: Inputs,
    y: sp.csr_matrix,
    loss_fn: Any,
    batch_size: int,
    min_score: float,
    keep_scores: bool = True,
) -> tuple[float, sp.csr_matrix | None]:
    """(mean loss, CSR scores >= min_score) over a labelled set in one pass; scores None when not `keep_scores`
    (an epoch that only needs the loss skips the sigmoid and the sparse copy of every batch)."""
    total, count, parts = 0.0, 0, []
    with torch.no_grad():
        for idx, logits in iter_logits(model, inputs, batch_size):
            target = label_batch(y, idx).to(logits.device)
            total += float(loss_fn(logits, target)) * len(idx)
            count += len(idx)
            if keep_scores:
                parts.append(sparsify(torch.sigmoid(logits).cpu().numpy(), min_score, None))
    scores = sp.vstack(parts, format="csr", dtype=np.float32) if keep_scores else None
    return total / max(count, 1), scores
