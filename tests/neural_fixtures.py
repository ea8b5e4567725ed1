"""Tiny data and params for the neural tests (64 proteins x 16 dims x 12 terms, 4 terms per aspect)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
import yaml

from cafa_mlflow.predictors.neural import TrainParams

torch.set_num_threads(1)
PARAMS_YAML = Path(__file__).resolve().parents[1] / "params.yaml"
ASPECTS = np.array(["BPO", "CCO", "MFO"] * 4)  # interleaved so vocabulary order != head order


def params(**overrides) -> TrainParams:
    """params.yaml's train block with small, fast settings (monitor val_loss) and any overrides."""
    block = yaml.safe_load(PARAMS_YAML.read_text())["train"]
    block.update(
        model="simple",
        hidden_dim=32,
        dropout=0.0,
        batch_size=16,
        max_epochs=3,
        monitor="val_loss",
        monitor_mode="min",
        inference_batch_size=64,
        scheduler="none",
        min_score=0.0,
        lr=1e-2,
    )
    block.update(overrides)
    return TrainParams.from_dict(block)


def tiny_data(n: int = 64, dim: int = 16, n_terms: int = 12, seed: int = 0):
    """(X float16, Y CSR float32): labels are a learnable function of X."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float16)
    w = rng.standard_normal((dim, n_terms))
    logits = x.astype(np.float64) @ w
    y = (logits > np.quantile(logits, 0.7, axis=0)).astype(np.float32)
    return x, sp.csr_matrix(y)


def tiny_chunks(x: np.ndarray, seed: int = 0):
    """Ragged chunk vectors: protein i has 1..3 chunks, each a noisy copy of x[i]."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 4, size=len(x))
    offsets = np.concatenate([[0], np.cumsum(counts)])
    rows = np.repeat(np.arange(len(x)), counts)
    vectors = x[rows].astype(np.float32) + 0.1 * rng.standard_normal((len(rows), x.shape[1])).astype(np.float32)
    return vectors.astype(np.float16), offsets


def tiny_esm():
    import esm

    torch.manual_seed(0)
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    model = esm.model.esm2.ESM2(num_layers=2, embed_dim=32, attention_heads=4, alphabet=alphabet, token_dropout=True)
    return model, alphabet


def tiny_sequences(n: int = 24, seed: int = 0):
    """Random sequences; label j = sequence contains amino acid AAS[j] at least twice."""
    rng = np.random.default_rng(seed)
    aas = list("ACDEFGHIKLMNPQRSTVWY")
    seqs = ["".join(rng.choice(aas, size=int(rng.integers(8, 20)))) for _ in range(n)]
    y = np.array([[s.count(a) >= 2 for a in "ACDEFGHIKLMN"] for s in seqs], dtype=np.float32)
    return seqs, sp.csr_matrix(y)
