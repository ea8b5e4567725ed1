"""Long-sequence strategies: split proteins into model-sized units and pool unit vectors back.

A *unit* is one residue string the model sees (between BOS and EOS). Strategies:
- balanced: one unit; a protein longer than max_residues keeps its first max_residues//2 and
  last max_residues - max_residues//2 residues.
- sliding_window: proteins longer than `window` become windows of `window` residues; consecutive
  windows overlap by `stride` residues (they start window - stride apart) and the last window
  ends exactly at the protein end. Window vectors are pooled into one protein vector.
- chunks: proteins longer than `window` become ceil(L / window) non-overlapping chunks of near
  equal length (sizes differ by at most 1); the cache keeps one vector per chunk (ragged).
Each unit vector is the mean over its residue positions (BOS/EOS/padding excluded), or the BOS
token for pooling 'cls'. Across windows, 'mean' and 'cls' average the window vectors, 'max' takes
the element-wise maximum. With a single unit 'max' equals 'mean'.
"""

from __future__ import annotations

import math

import numpy as np

from cafa_mlflow.errors import ConfigError

STRATEGIES = ("balanced", "sliding_window", "chunks")
POOLINGS = ("mean", "max", "cls")


def check_strategy(strategy: str, pooling: str, window: int, stride: int, max_residues: int) -> None:
    """Raise ConfigError for an inconsistent strategy configuration."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"embed.strategy={strategy!r}: choose one of {', '.join(STRATEGIES)}")
    if pooling not in POOLINGS:
        raise ConfigError(f"embed.pooling={pooling!r}: choose one of {', '.join(POOLINGS)}")
    if max_residues < 2:
        raise ConfigError(f"embed.max_residues={max_residues} must be at least 2")
    if strategy != "balanced":
        if not 1 <= window <= max_residues:
            raise ConfigError(f"embed.window={window} must be between 1 and max_residues={max_residues}")
        if strategy == "sliding_window" and not 0 <= stride < window:
            raise ConfigError(f"embed.stride={stride} (window overlap) must be >= 0 and < window={window}")


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Start offsets of sliding windows (overlap `stride`); the last window ends at `length`."""
    if length <= window:
        return [0]
    step = window - stride
    starts = list(range(0, length - window, step))
    starts.append(length - window)
    return starts


def chunk_bounds(length: int, window: int) -> list[tuple[int, int]]:
    """Near-equal non-overlapping (start, end) chunks of at most `window` residues."""
    n = max(1, math.ceil(length / window))
    edges = [round(i * length / n) for i in range(n + 1)]
    return list(zip(edges[:-1], edges[1:]))


def split_units(seq: str, strategy: str, window: int, stride: int, max_residues: int) -> list[str]:
    """The residue strings the model sees for one protein."""
    if strategy == "balanced":
        if len(seq) <= max_residues:
            return [seq]
        head = max_residues // 2
        return [seq[:head] + seq[len(seq) - (max_residues - head) :]]
    if strategy == "sliding_window":
        return [seq[s : s + window] for s in window_starts(len(seq), window, stride)]
    return [seq[s:e] for s, e in chunk_bounds(len(seq), window)]


def combine(unit_vectors: np.ndarray, counts: np.ndarray, strategy: str, pooling: str) -> np.ndarray:
    """Pool float32 unit vectors (grouped per protein, `counts` units each) into the stored rows."""
    if strategy == "chunks" or np.all(counts == 1):
        return unit_vectors
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    if pooling == "max":
        return np.maximum.reduceat(unit_vectors, starts, axis=0)
    return np.add.reduceat(unit_vectors, starts, axis=0) / counts[:, None].astype(unit_vectors.dtype)
