"""embed_fasta: FASTA -> resumable, sharded ESM-2 embedding cache, plus throughput stats."""

from __future__ import annotations

import hashlib
import logging
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import esm
import numpy as np
import torch

from cafa_mlflow.console import progress_bar
from cafa_mlflow.embed import cache, units
from cafa_mlflow.embed.device import autocast_dtype, barrier, dist_env, init_distributed, resolve_device
from cafa_mlflow.embed.forward import check_letters, embed_units, token_table
from cafa_mlflow.embed.model import load_esm, resolve_layer
from cafa_mlflow.embed.settings import EmbedSettings
from cafa_mlflow.errors import ConfigError
from cafa_mlflow.io.fasta import load_fasta
from cafa_mlflow.io.text import write_json

log = logging.getLogger(__name__)


class EmbedResult(NamedTuple):
    cache_dir: Path
    stats: dict[str, Any]


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1 << 20) if sys.platform == "darwin" else kb / 1024


def _input_hash(ids: list[str], seqs: list[str]) -> str:
    """sha256 of the parsed content (id TAB sequence per line): independent of compression and wrapping."""
    h = hashlib.sha256()
    for pid, seq in zip(ids, seqs):
        h.update(f"{pid}\t{seq}\n".encode())
    return h.hexdigest()


def matches_settings(cache_dir: str | os.PathLike, settings: EmbedSettings) -> bool:
    """Whether a complete cache was made with these settings (any input). Caches without a recorded key
    (written by other tools) are trusted."""
    manifest = cache.read_manifest(cache_dir)
    if manifest is None:
        return False
    key = manifest.get("key")
    return key is None or key == settings.key(key["input_sha256"])


def complete_cache(ids: list[str], seqs: list[str], settings: EmbedSettings, out_dir: str | os.PathLike) -> Path | None:
    """The complete cache `embed_fasta` made (or would make) of exactly these proteins under `settings` in
    out_dir, or None; embeds nothing."""
    cache_dir = Path(out_dir) / cache.cache_key(settings.key(_input_hash(ids, seqs)))[:16]
    return cache_dir if cache.read_manifest(cache_dir) is not None else None


def _drop_damaged(cache_dir: Path, manifest: dict) -> tuple[dict | None, int]:
    """Check a complete cache's files against its manifest; delete damaged or missing shards (and the
    manifest, so they are embedded again). Returns (manifest or None, number of shards to re-embed)."""
    damaged = cache.damaged_files(cache_dir, manifest)
    if not damaged:
        return manifest, 0
    shards = {s["file"] for s in manifest.get("shards", [])}
    bad = sorted(n for n in damaged if n in shards)
    for name in bad:
        (cache_dir / name).unlink(missing_ok=True)
    (cache_dir / cache.MANIFEST).unlink()  # ids.txt and offsets are rewritten when the cache is finished
    log.warning(
        "%s: %d damaged or missing file(s) (%s); embedding %d shard(s) again and rewriting the index",
        cache_dir,
        len(damaged),
        "; ".join(list(damaged.values())[:3]),
        len(bad),
    )
    return None, len(bad)


def embed_fasta(
    fasta: str | os.PathLike,
    settings: EmbedSettings,
    out_dir: str | os.PathLike,
    *,
    toks_per_batch: int = 4096,
    device: str = "auto",
    shard_size: int = 2048,
    progress: bool = True,
) -> EmbedResult:
    """Embed every protein of `fasta` into out_dir/<cache key>/ (see cache.py for the layout).

    Reuses a complete cache, resumes an interrupted one, and under torchrun embeds this rank's
    shards (k % world_size == rank) with rank 0 writing the manifest. Returns the cache folder and
    throughput stats for tracking."""
    t0 = time.perf_counter()
    max_residues = settings.max_residues
    if toks_per_batch < max_residues + 2:
        raise ConfigError(
            f"embed.toks_per_batch={toks_per_batch} must be at least max_residues + 2 = {max_residues + 2}"
        )
    if shard_size < 1:
        raise ConfigError(f"embed.shard_size={shard_size} must be positive")
    dist = dist_env()
    dev = resolve_device(device, dist.local_rank)
    dtype = autocast_dtype(settings.precision, dev)
    records = load_fasta(fasta)  # validates; nothing is written before this succeeds
    ids = [r.id for r in records]
    seqs = [r.sequence for r in records]
    del records
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    check_letters(ids, seqs, token_table(alphabet))
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    key_params = settings.key(_input_hash(ids, seqs))
    key = cache.cache_key(key_params)
    cache_dir = Path(out_dir) / key[:16]
    stats: dict[str, Any] = {
        "n_proteins": len(ids),
        "n_residues": int(lengths.sum()),
        "share_over_1022": float((lengths > max_residues).mean()),
        "max_length": int(lengths.max()),
        "input_hash": key_params["input_sha256"],
        "cache_key": key,
        "model_label": settings.label,
        "device": str(dev),
        "precision": settings.precision,
        "world_size": dist.world_size,
    }
    manifest = cache.read_manifest(cache_dir)
    computed = np.zeros(len(ids), dtype=bool)
    stats["n_repaired_shards"] = 0
    if manifest is not None and dist.rank == 0:
        manifest, stats["n_repaired_shards"] = _drop_damaged(cache_dir, manifest)
    if manifest is None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        write_json(cache_dir / cache.KEY_FILE, key_params, sort_keys=True)
        created_pg = init_distributed(dist, dev)
        try:
            manifest = _run_shards(
                cache_dir,
                key_params,
                ids,
                seqs,
                settings,
                toks_per_batch,
                dev,
                dtype,
                shard_size,
                progress,
                dist,
                computed,
            )
        finally:
            if created_pg:
                torch.distributed.destroy_process_group()
    seconds = time.perf_counter() - t0
    stats.update(
        {
            "cache_hit": not computed.any(),
            "n_computed": int(computed.sum()),
            "seconds": seconds,
            "residues_per_s": float(lengths[computed].sum() / seconds),
            "proteins_per_s": float(computed.sum() / seconds),
            "peak_rss_mb": _peak_rss_mb(),
            "dim": manifest["dim"],
            "layer": manifest["layer"],
            "n_vectors": manifest["n_vectors"],
        }
    )
    return EmbedResult(cache_dir, stats)


def _run_shards(
    cache_dir,
    key_params,
    ids,
    seqs,
    settings,
    toks_per_batch,
    dev,
    dtype,
    shard_size,
    progress,
    dist,
    computed,
) -> dict:
    ranges = cache.shard_ranges(len(ids), shard_size)
    esm_model, strategy, pooling = settings.esm_model, settings.strategy, settings.pooling
    window, stride, max_residues = settings.window, settings.stride, settings.max_residues
    unit_lists = [units.split_units(s, strategy, window, stride, max_residues) for s in seqs]
    counts = np.array([len(u) for u in unit_lists], dtype=np.int64)
    rows = counts if strategy == "chunks" else np.ones(len(ids), dtype=np.int64)
    mine = [k for k in range(len(ranges)) if k % dist.world_size == dist.rank]
    todo = [
        k for k in mine if not cache.shard_done(cache_dir / cache.shard_name(k), int(rows[slice(*ranges[k])].sum()))
    ]
    resolved_layer = key_params["layer"] if key_params["layer"] >= 0 else None
    if todo or resolved_layer is None:
        model, _ = load_esm(esm_model)
        resolved_layer = resolve_layer(settings.layer, model.num_layers)
    if todo:
        model = model.to(dev)
        total = sum(len(u) for k in todo for u_list in unit_lists[slice(*ranges[k])] for u in u_list)
        bar = progress_bar(
            total=total,
            unit="res",
            unit_scale=True,
            desc=f"embed rank {dist.rank}" if dist.world_size > 1 else "embed",
            disable=not progress,
            dynamic_ncols=True,
        )
        alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
        for k in todo:
            lo, hi = ranges[k]
            flat = [u for u_list in unit_lists[lo:hi] for u in u_list]
            vecs = embed_units(model, alphabet, flat, resolved_layer, pooling, toks_per_batch, dev, dtype, bar.update)
            cache.write_shard(cache_dir / cache.shard_name(k), units.combine(vecs, counts[lo:hi], strategy, pooling))
            computed[lo:hi] = True
        bar.close()
    barrier(dist)
    if dist.rank != 0:
        barrier(dist)
        return _wait_manifest(cache_dir)
    shard_files = [cache.shard_name(k) for k in range(len(ranges))]
    missing = [f for f in shard_files if not (cache_dir / f).is_file()]
    if missing:
        raise RuntimeError(f"{cache_dir}: shards {missing[:5]} missing after all ranks finished")
    dim = np.load(cache_dir / shard_files[0], mmap_mode="r").shape[1]
    manifest = {
        "key": key_params,
        "esm_model": str(esm_model),
        "model_label": settings.label,
        "layer": int(resolved_layer),
        "strategy": strategy,
        "window": window,
        "stride": stride,
        "pooling": pooling,
        "max_residues": max_residues,
        "precision": key_params["precision"],
        "n_proteins": len(ids),
        "n_vectors": int(rows.sum()),
        "dim": int(dim),
        "dtype": "float16",
        "ragged": strategy == "chunks",
        "shard_size": shard_size,
        "shards": [
            {"file": f, "proteins": list(r), "rows": int(rows[slice(*r)].sum())} for f, r in zip(shard_files, ranges)
        ],
    }
    manifest = cache.finalize(cache_dir, ids, rows if strategy == "chunks" else None, manifest)
    barrier(dist)
    return manifest


def _wait_manifest(cache_dir: Path) -> dict:
    manifest = cache.read_manifest(cache_dir)
    if manifest is None:
        raise RuntimeError(f"{cache_dir}: rank 0 did not write the manifest")
    return manifest
