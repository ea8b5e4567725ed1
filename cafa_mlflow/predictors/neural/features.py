"""Model inputs for given protein ids from an embedding cache (or a FASTA, for `finetune`).

Dense models read pooled vectors (a ragged `chunks` cache is averaged per protein); `chunk_attention`
reads the per-chunk vectors. Rows stay memory-mapped: only the requested proteins' rows are read per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cafa_mlflow.errors import ConfigError, InputError
from cafa_mlflow.predictors.neural.data import ChunkInputs, DenseInputs, Inputs, SubsetInputs


def rows_of(cache_ids: Sequence[str], ids: Sequence[str], source: str) -> np.ndarray:
    """Row of each id in the cache; InputError naming the first missing id."""
    index = {pid: i for i, pid in enumerate(cache_ids)}
    rows = np.fromiter((index.get(pid, -1) for pid in ids), dtype=np.int64, count=len(ids))
    missing = np.flatnonzero(rows < 0)
    if len(missing):
        raise InputError(
            f"{source}: {len(missing)} of {len(ids)} proteins have no embedding (e.g. {ids[missing[0]]}); "
            "re-run `cafa embed` with the current prepared data"
        )
    return rows


def pooled_chunks(vectors: Any, offsets: np.ndarray, proteins: np.ndarray | None = None) -> np.ndarray:
    """Mean of each protein's chunk vectors (float32), for `proteins` (row numbers, in that order; default
    all), read block by block: only those proteins' chunks are read."""
    offsets = np.asarray(offsets, dtype=np.int64)
    proteins = np.arange(len(offsets) - 1) if proteins is None else np.asarray(proteins, dtype=np.int64)
    starts, counts = offsets[proteins], offsets[proteins + 1] - offsets[proteins]
    out = np.empty((len(proteins), vectors.shape[1]), dtype=np.float32)
    block = 4096  # proteins per read: bounds the float32 copy of the chunk rows
    for start in range(0, len(out), block):
        s, c = starts[start : start + block], counts[start : start + block]
        first = np.concatenate([[0], np.cumsum(c)[:-1]])  # each protein's first row in the block
        rows = np.asarray(vectors[np.repeat(s - first, c) + np.arange(c.sum())], dtype=np.float32)
        out[start : start + len(c)] = np.add.reduceat(rows, first, axis=0) / c[:, None]
    return out


def embedding_inputs(embeddings: Any, ids: Sequence[str], model: str, source: str = "embedding cache") -> Inputs:
    """Inputs for `ids` (in that order) from a loaded cache (cafa_mlflow.embed.Embeddings)."""
    rows = rows_of(embeddings.ids, ids, source)
    ragged = embeddings.offsets is not None
    if model == "chunk_attention":
        if not ragged:
            raise ConfigError(
                f"{source}: model chunk_attention needs per-chunk vectors; embed with `--strategy chunks` "
                "(params.yaml embed.strategy: chunks) or pick another train.model"
            )
        return SubsetInputs(ChunkInputs(embeddings.vectors, embeddings.offsets), rows)
    if ragged:
        return DenseInputs(pooled_chunks(embeddings.vectors, embeddings.offsets, rows))
    return SubsetInputs(DenseInputs(embeddings.vectors), rows)


def sequences_for(records: Any, ids: Sequence[str], source: str) -> list[str]:
    """Sequences of `ids` from FASTA records (cafa_mlflow.io.fasta.FastaRecord), in that order."""
    by_id = {r.id: r.sequence for r in records}
    missing = [pid for pid in ids if pid not in by_id]
    if missing:
        raise InputError(
            f"{source}: no sequence for {len(missing)} proteins (e.g. {missing[0]}); re-run `cafa prepare`"
        )
    return [by_id[pid] for pid in ids]
