"""Sequences in memory -> pooled vectors, exactly as `embed_fasta` + `resolve.pooled_rows` make them.

The served model embeds its requests with this: the same units per protein (the long-sequence strategy),
the same token-budget batching and forward pass, the same float16 storage rounding the cache applies
(members were fitted on float16-cached vectors), and for `chunks` the mean of a protein's chunk vectors.
So a protein scored from a request and the same protein scored from the cache get the same vector."""

from __future__ import annotations

from collections.abc import Sequence

import esm
import numpy as np

from cafa_mlflow.embed import units
from cafa_mlflow.embed.cache import DTYPE
from cafa_mlflow.embed.device import autocast_dtype, resolve_device
from cafa_mlflow.embed.forward import check_letters, embed_units, token_table
from cafa_mlflow.embed.model import load_esm, resolve_layer
from cafa_mlflow.embed.settings import EmbedSettings
from cafa_mlflow.errors import ConfigError, InputError


def check_sequences(ids: Sequence[str], seqs: Sequence[str]) -> None:
    """InputError naming the first protein with an empty sequence or a letter ESM-2 cannot encode."""
    for pid, seq in zip(ids, seqs):
        if not seq:
            raise InputError(f"protein {pid!r} has an empty sequence; give its residues (one-letter codes).")
    check_letters(ids, seqs, token_table(esm.data.Alphabet.from_architecture("ESM-1b")))


class SequenceEmbedder:
    """An ESM-2 encoder loaded once (lazily, at the first call) for the settings a model was fitted on."""

    def __init__(self, settings: EmbedSettings, toks_per_batch: int = 4096, device: str = "cpu") -> None:
        if toks_per_batch < settings.max_residues + 2:
            raise ConfigError(
                f"embed.toks_per_batch={toks_per_batch} must be at least max_residues + 2 = {settings.max_residues + 2}"
            )
        self.settings, self.toks_per_batch, self.device = settings, int(toks_per_batch), device
        self._model = None

    def load(self) -> SequenceEmbedder:
        """Load the encoder now (a hub name through the torch hub cache, a checkpoint from its file)."""
        if self._model is None:
            model, alphabet = load_esm(self.settings.esm_model)
            self._dev = resolve_device(self.device)
            self._dtype = autocast_dtype(self.settings.precision, self._dev)
            self._layer = resolve_layer(self.settings.layer, model.num_layers)
            self._model, self._alphabet = model.to(self._dev), alphabet
        return self

    def __call__(self, ids: Sequence[str], seqs: Sequence[str]) -> np.ndarray:
        """float32 (len(ids), dim) pooled vectors, row i = ids[i] (InputError for a sequence it cannot encode)."""
        check_sequences(ids, seqs)
        self.load()
        s = self.settings
        unit_lists = [units.split_units(q, s.strategy, s.window, s.stride, s.max_residues) for q in seqs]
        counts = np.array([len(u) for u in unit_lists], dtype=np.int64)
        flat = [u for u_list in unit_lists for u in u_list]
        vecs = embed_units(
            self._model, self._alphabet, flat, self._layer, s.pooling, self.toks_per_batch, self._dev, self._dtype
        )
        rows = units.combine(vecs, counts, s.strategy, s.pooling).astype(DTYPE)  # as the cache stores them
        if s.strategy != "chunks":
            return rows.astype(np.float32)
        starts = np.concatenate([[0], np.cumsum(counts)])
        return np.stack([rows[a:b].astype(np.float32).mean(axis=0) for a, b in zip(starts[:-1], starts[1:])])
