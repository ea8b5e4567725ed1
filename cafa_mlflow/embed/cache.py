"""On-disk embedding cache: float16 .npy shards (memory-mapped on load), ids.txt and manifest.json.

One folder per cache key. Shards cover fixed slices of the input order (shard k = proteins
k*shard_size .. (k+1)*shard_size) and are written atomically, so a killed run resumes by computing
only the missing shards. manifest.json is written last, with "complete": true and the size and sha256 of
every file (`checksums`): readers refuse a damaged or short file, and `cafa embed` re-embeds it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cafa_mlflow.errors import InputError
from cafa_mlflow.io import integrity
from cafa_mlflow.io.text import atomic_write, write_json

MANIFEST = "manifest.json"
KEY_FILE = "key.json"
IDS_FILE = "ids.txt"
OFFSETS_FILE = "offsets.npy"
DTYPE = np.float16


def cache_key(params: dict[str, Any]) -> str:
    """Hex sha256 of the canonical JSON of everything that determines the vectors."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


def shard_name(k: int) -> str:
    return f"shard_{k:05d}.npy"


def shard_ranges(n: int, shard_size: int) -> list[tuple[int, int]]:
    return [(s, min(s + shard_size, n)) for s in range(0, n, shard_size)]


def shard_done(path: Path, rows: int) -> bool:
    """A finished shard exists with the expected row count (shards are only ever moved into place whole)."""
    if not path.is_file():
        return False
    try:
        return np.load(path, mmap_mode="r").shape[0] == rows
    except (ValueError, OSError):
        return False


def write_shard(path: Path, vectors: np.ndarray) -> None:
    with atomic_write(path, "wb") as handle:
        np.save(handle, np.ascontiguousarray(vectors, dtype=DTYPE))


def read_manifest(cache_dir: str | os.PathLike) -> dict | None:
    """The manifest of a complete cache, else None."""
    path = Path(cache_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, OSError):  # damaged (never by a kill: it is written atomically): embed again
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("complete") else None


def finalize(cache_dir: Path, ids: Sequence[str], rows_per_protein: np.ndarray | None, manifest: dict) -> dict:
    """Write ids, ragged offsets and the manifest (last, so its presence means complete)."""
    with atomic_write(cache_dir / IDS_FILE) as handle:
        handle.writelines(f"{pid}\n" for pid in ids)
    if rows_per_protein is not None:
        offsets = np.concatenate([[0], np.cumsum(rows_per_protein)]).astype(np.int64)
        with atomic_write(cache_dir / OFFSETS_FILE, "wb") as handle:
            np.save(handle, offsets)
    for leftover in cache_dir.glob(".*.tmp"):  # from killed runs
        leftover.unlink(missing_ok=True)
    files = (
        [s["file"] for s in manifest["shards"]] + [IDS_FILE] + ([OFFSETS_FILE] if rows_per_protein is not None else [])
    )
    checksums = {name: integrity.record(cache_dir / name) for name in files}
    manifest = {**manifest, "checksums": checksums, "complete": True}
    write_json(cache_dir / MANIFEST, manifest, sort_keys=True)
    return manifest


REPAIR = "run `cafa embed` again: it re-embeds damaged or missing shards"


def damaged_files(cache_dir: str | os.PathLike, manifest: dict) -> dict[str, str]:
    """{file: why} for the cache's files that are missing, short or differ from their recorded checksum."""
    damaged = {}
    for name, entry in (manifest.get("checksums") or {}).items():
        try:
            integrity.check_file(Path(cache_dir) / name, entry, REPAIR)
        except InputError as err:
            damaged[name] = str(err)
    return damaged


def check_files(cache_dir: Path, manifest: dict) -> None:
    """InputError naming the first damaged file of the cache and what to run."""
    for name, entry in sorted((manifest.get("checksums") or {}).items()):
        integrity.check_file(cache_dir / name, entry, REPAIR)


class ShardedArray:
    """Read-only row access across memory-mapped shards, like a (rows, dim) float16 array."""

    def __init__(self, shards: list[np.ndarray]):
        self.shards = shards
        self.starts = np.concatenate([[0], np.cumsum([len(s) for s in shards])]).astype(np.int64)
        dim = shards[0].shape[1] if shards else 0
        self.shape = (int(self.starts[-1]), dim)
        self.dtype = np.dtype(DTYPE)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            i = int(index) + (len(self) if index < 0 else 0)
            if not 0 <= i < len(self):
                raise IndexError(index)
            k = int(np.searchsorted(self.starts, i, side="right")) - 1
            return self.shards[k][i - self.starts[k]]
        rows = np.arange(len(self))[index]
        out = np.empty((len(rows), self.shape[1]), dtype=self.dtype)
        shard_of = np.searchsorted(self.starts, rows, side="right") - 1
        for k in np.unique(shard_of):
            sel = shard_of == k
            out[sel] = self.shards[k][rows[sel] - self.starts[k]]
        return out

    def __array__(self, dtype=None, copy=None):
        out = np.concatenate(self.shards) if self.shards else np.empty(self.shape, self.dtype)
        return out.astype(dtype) if dtype is not None else out

    def iter_shards(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, memmap) per shard: stream through everything without loading it at once."""
        for start, shard in zip(self.starts, self.shards):
            yield int(start), shard


@dataclass
class Embeddings:
    """A loaded cache. `vectors[i]` is protein i's vector; for ragged caches (strategy chunks)
    protein i owns rows offsets[i]:offsets[i+1] and `protein(i)` returns them."""

    ids: list[str]
    vectors: ShardedArray
    offsets: np.ndarray | None
    manifest: dict

    def __len__(self) -> int:
        return len(self.ids)

    def protein(self, i: int) -> np.ndarray:
        if self.offsets is None:
            return self.vectors[i]
        return self.vectors[int(self.offsets[i]) : int(self.offsets[i + 1])]

    def index(self) -> dict[str, int]:
        return {pid: i for i, pid in enumerate(self.ids)}


def load_embeddings(cache_dir: str | os.PathLike) -> Embeddings:
    """Open a complete cache; vectors stay memory-mapped (float16), nothing is copied."""
    cache_dir = Path(cache_dir)
    manifest = read_manifest(cache_dir)
    if manifest is None:
        raise InputError(
            f"{cache_dir}: no complete embedding cache here (manifest.json missing or incomplete); run `cafa embed` first."
        )
    check_files(cache_dir, manifest)
    try:
        ids = (cache_dir / IDS_FILE).read_text().splitlines()
        shards = [np.load(cache_dir / s["file"], mmap_mode="r") for s in manifest["shards"]]
        offsets = np.load(cache_dir / OFFSETS_FILE) if manifest.get("ragged") else None
    except (OSError, ValueError, KeyError, TypeError) as err:  # a file deleted or damaged after the cache was made
        raise InputError(
            f"{cache_dir}: damaged embedding cache ({type(err).__name__}: {' '.join(str(err).split())[:200]}); "
            "delete this folder and run `cafa embed` again."
        ) from err
    rows = sum(len(s) for s in shards)
    if (len(ids), rows) != ((len(ids), len(ids)) if offsets is None else (len(offsets) - 1, int(offsets[-1]))):
        raise InputError(
            f"{cache_dir}: damaged embedding cache ({len(ids)} ids, {rows} vectors); "
            "delete this folder and run `cafa embed` again."
        )
    return Embeddings(ids, ShardedArray(shards), offsets, manifest)
