"""Find or build the embeddings of the prepared proteins for the configured encoder.

`<embed.out>/index.json` maps a role (train, test, or a FASTA's stem) to the cache folder of the last
`embed` run, written relative to `<embed.out>` (so the index holds from any working directory and after the folder
moves; an older index's paths, relative to where `embed` ran, are still read); a step that needs vectors under
other settings embeds them now, so no step ever uses the vectors of another encoder than the one it logs."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cafa_mlflow.embed.cache import Embeddings
from cafa_mlflow.embed.runner import embed_fasta, matches_settings
from cafa_mlflow.embed.settings import EmbedSettings
from cafa_mlflow.errors import InputError
from cafa_mlflow.io.readback import read_json
from cafa_mlflow.io.text import write_json

INDEX = "index.json"
ROLES = ("train", "test")
log = logging.getLogger(__name__)


def read_index(out: str | Path) -> dict[str, str]:
    """{role: cache folder}, each folder as a path usable from the current directory."""
    path = Path(out) / INDEX
    if not path.exists():
        return {}
    stored = read_json(path, "run `cafa embed` again (it rewrites the index)")
    return {role: _resolve(Path(out), folder) for role, folder in stored.items()}


def _resolve(out: Path, folder: str) -> str:
    inside = out / folder
    return str(inside) if not Path(folder).is_absolute() and inside.is_dir() else folder


def write_index(out: str | Path, index: dict[str, str]) -> Path:
    """Write {role: cache folder}, folders under `out` relative to it (others as given)."""
    path = Path(out) / INDEX
    write_json(path, {role: _relative(Path(out), folder) for role, folder in index.items()})
    return path


def _relative(out: Path, folder: str) -> str:
    try:
        return Path(folder).resolve().relative_to(out.resolve()).as_posix()
    except ValueError:  # a cache outside embed.out (an index written by hand)
        return folder


def fasta_roles(embed_fasta_path: str | None, prepared_root: str | Path) -> dict[str, str]:
    """Which FASTA files an `embed` run embeds: {role: path} (the prepared train/test sets by default)."""
    if embed_fasta_path:
        return {Path(embed_fasta_path).name.split(".")[0]: embed_fasta_path}
    root = Path(prepared_root)
    return {role: str(root / f"{role}.fasta") for role in ROLES if (root / f"{role}.fasta").exists()}


def runtime_options(block) -> dict:
    """embed_fasta's runtime keyword arguments from the embed block."""
    return {"toks_per_batch": block.toks_per_batch, "device": block.device, "shard_size": block.shard_size}


def cache_for(params, role: str) -> Path:
    """The cache of a role's prepared proteins under the configured embed settings (embedded now if missing)."""
    block, prepared = params.embed, Path(params.prepare.out)
    settings = EmbedSettings.from_block(block)
    index = read_index(block.out)
    if role in index and matches_settings(index[role], settings):
        return Path(index[role])
    fasta = prepared / f"{role}.fasta"
    if not fasta.is_file():
        raise InputError(
            f"{Path(block.out) / INDEX}: no embeddings of the {role} proteins and no {fasta} to embed; "
            "run `cafa prepare` (or `dvc repro prepare`) first."
        )
    log.info("no %s embeddings for %s in %s: embedding %s now", role, settings.label, block.out, fasta)
    cache_dir = embed_fasta(fasta, settings, block.out, **runtime_options(block)).cache_dir
    write_index(block.out, {**read_index(block.out), role: str(cache_dir)})
    return cache_dir


def pooled_rows(emb: Embeddings, ids: list[str], source: str) -> np.ndarray:
    """One pooled vector per id, in `ids` order (chunk caches: the mean of a protein's chunks)."""
    index = emb.index()
    missing = [i for i in ids if i not in index]
    if missing:
        raise InputError(
            f"{source}: {len(missing)} proteins have no embedding, e.g. {missing[0]}; "
            "re-run `cafa embed` after `cafa prepare`."
        )
    rows = np.array([index[i] for i in ids], dtype=np.int64)
    if emb.offsets is None:
        return np.asarray(emb.vectors[rows], dtype=np.float32)
    return np.stack([np.asarray(emb.protein(i), np.float32).mean(axis=0) for i in rows])
