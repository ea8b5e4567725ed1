"""Model inputs (dense, ragged chunks, sequences), sparse-label batching and the validation split.

Nothing here densifies more than one batch: embeddings may be float16 memmaps and labels stay CSR
until `label_batch` slices the batch's rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.model_selection import GroupShuffleSplit, ShuffleSplit

from cafa_mlflow.errors import InputError


class DenseInputs:
    """N x D embeddings (any float dtype, np.memmap welcome); batches come out float32."""

    def __init__(self, x: Any) -> None:
        if len(getattr(x, "shape", ())) != 2:  # ndarray, np.memmap or the embed cache's ShardedArray
            raise InputError(f"embeddings must be a 2-D array (N x D), got shape {getattr(x, 'shape', None)}")
        self.x = x

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def batch(self, idx: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.x[idx], dtype=np.float32))


@dataclass
class ChunkInputs:
    """Ragged per-chunk vectors: protein i owns rows vectors[offsets[i]:offsets[i+1]] (at least one)."""

    vectors: Any  # M x D, any float dtype
    offsets: np.ndarray  # N + 1, non-decreasing, offsets[0] == 0, offsets[-1] == M

    def __post_init__(self) -> None:
        self.offsets = np.asarray(self.offsets, dtype=np.int64)
        counts = np.diff(self.offsets)
        if self.offsets[0] != 0 or self.offsets[-1] != self.vectors.shape[0] or (counts < 1).any():
            raise InputError(
                "chunk offsets must start at 0, end at the number of chunk vectors "
                f"({self.vectors.shape[0]}) and give every protein at least one chunk"
            )

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(B x C x D float32 padded with zeros, B x C bool mask, True = real chunk)."""
        starts, ends = self.offsets[idx], self.offsets[np.asarray(idx) + 1]
        counts = ends - starts
        width = int(counts.max())
        out = np.zeros((len(idx), width, self.vectors.shape[1]), dtype=np.float32)
        mask = np.arange(width)[None, :] < counts[:, None]
        rows = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)])
        out[mask] = np.asarray(self.vectors[rows], dtype=np.float32)
        return torch.from_numpy(out), torch.from_numpy(mask)


class SequenceInputs:
    """Amino-acid sequences tokenized per batch with a fair-esm alphabet, truncated to max_residues."""

    def __init__(self, sequences: Sequence[str], alphabet: Any, max_residues: int) -> None:
        self.sequences = list(sequences)
        self.converter = alphabet.get_batch_converter()
        self.max_residues = max_residues

    def __len__(self) -> int:
        return len(self.sequences)

    def batch(self, idx: np.ndarray) -> torch.Tensor:
        data = [(str(i), self.sequences[i][: self.max_residues]) for i in idx]
        return self.converter(data)[2]


class SubsetInputs:
    """Rows `index` of other inputs, without copying them (e.g. the train or val part of a memmap)."""

    def __init__(self, base: Inputs, index: np.ndarray) -> None:
        index = np.asarray(index, dtype=np.int64)
        if isinstance(base, SubsetInputs):  # rows of rows: one level, so `base` is always the real inputs
            base, index = base.base, base.index[index]
        self.base, self.index = base, index

    def __len__(self) -> int:
        return len(self.index)

    def batch(self, idx: np.ndarray) -> Any:
        return self.base.batch(self.index[idx])


Inputs = DenseInputs | ChunkInputs | SequenceInputs | SubsetInputs


def as_inputs(x: Any, alphabet: Any = None, max_residues: int | None = None) -> Inputs:
    """Wrap raw model input: an array (dense), a (vectors, offsets) pair / ChunkInputs, or a list of sequences."""
    if isinstance(x, (DenseInputs, ChunkInputs, SequenceInputs, SubsetInputs)):
        return x
    if isinstance(x, (list, tuple)) and (len(x) == 0 or isinstance(x[0], str)):
        if alphabet is None or max_residues is None:
            raise InputError("sequence inputs need the fine-tuned model's alphabet and max_residues")
        return SequenceInputs(x, alphabet, max_residues)
    if isinstance(x, tuple) and len(x) == 2:
        return ChunkInputs(*x)
    return DenseInputs(x)


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, tuple):
        return tuple(t.to(device) for t in batch)
    return batch.to(device)


def label_batch(y: sp.csr_matrix, idx: np.ndarray) -> torch.Tensor:
    """Dense float32 rows `idx` of the CSR label matrix (only this batch is densified)."""
    return torch.from_numpy(y[idx].toarray().astype(np.float32, copy=False))


def iter_batches(n: int, batch_size: int, rng: np.random.Generator | None) -> Iterator[np.ndarray]:
    """Index batches over range(n); shuffled when rng is given. Each batch is sorted (memmap locality)."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield np.sort(order[start : start + batch_size])


def sequence_groups(sequences: Sequence[str]) -> np.ndarray:
    """Group id per protein: identical sequences share a group (cheap near-duplicate key)."""
    _, groups = np.unique(np.asarray(sequences, dtype=object).astype(str), return_inverse=True)
    return groups.astype(np.int64)


def train_val_split(
    n: int, val_fraction: float, seed: int, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train_idx, val_idx). With `groups` (e.g. identical sequence, DIAMOND clusters) a group
    never straddles train and val (sklearn GroupShuffleSplit, so val is ~val_fraction of groups)."""
    if n < 2:
        raise InputError(f"need at least 2 proteins to split off a validation set, got {n}")
    dummy = np.zeros(n)
    if groups is None:
        splitter = ShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
        train, val = next(splitter.split(dummy))
    else:
        groups = np.asarray(groups)
        if len(groups) != n:
            raise InputError(f"groups has {len(groups)} entries for {n} proteins; give one group per protein")
        splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
        train, val = next(splitter.split(dummy, groups=groups))
    return np.sort(train), np.sort(val)
