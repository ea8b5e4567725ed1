"""embed_fasta: FASTA -> resumable, sharded ESM-2 embedding cache, plus throughput stats."""

from __future__ import annotations

import hashlib
import logging
import os
import resource
import sys
import time
from dataclasses import dataclass
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
    _check_batching(settings, toks_per_batch, shard_size)
    dist = dist_env()
    dev = resolve_device(device, dist.local_rank)
    dtype = autocast_dtype(settings.precision, dev)
    ids, seqs = _read_proteins(fasta)  # validates; nothing is written before this succeeds
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    key_params = settings.key(_input_hash(ids, seqs))
    run = ShardRun(
        cache_dir=Path(out_dir) / cache.cache_key(key_params)[:16],
        key_params=key_params,
        ids=ids,
        seqs=seqs,
        settings=settings,
        toks_per_batch=toks_per_batch,
        device=dev,
        dtype=dtype,
        shard_size=shard_size,
        progress=progress,
        dist=dist,
    )
    stats = _input_stats(run, lengths)
    manifest, computed, stats["n_repaired_shards"] = _complete_or_embed(run)
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
    return EmbedResult(run.cache_dir, stats)


@dataclass(frozen=True)
class ShardRun:
    """One embedding job: where the cache goes, the proteins, the encoder settings and how to run them."""

    cache_dir: Path
    key_params: dict[str, Any]
    ids: list[str]
    seqs: list[str]
    settings: EmbedSettings
    toks_per_batch: int
    device: torch.device
    dtype: Any  # autocast dtype, None for full precision
    shard_size: int
    progress: bool
    dist: Any  # device.DistEnv: rank, world size


class ShardsDone(NamedTuple):
    manifest: dict[str, Any]
    computed: np.ndarray  # bool per protein: embedded by this process now (False: already in the cache)


def _check_batching(settings: EmbedSettings, toks_per_batch: int, shard_size: int) -> None:
    max_residues = settings.max_residues
    if toks_per_batch < max_residues + 2:
        raise ConfigError(
            f"embed.toks_per_batch={toks_per_batch} must be at least max_residues + 2 = {max_residues + 2}"
        )
    if shard_size < 1:
        raise ConfigError(f"embed.shard_size={shard_size} must be positive")


def _read_proteins(fasta: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(ids, sequences) of a FASTA file, every letter one ESM-2 knows (InputError naming the protein otherwise)."""
    records = load_fasta(fasta)
    ids = [r.id for r in records]
    seqs = [r.sequence for r in records]
    del records
    check_letters(ids, seqs, token_table(esm.data.Alphabet.from_architecture("ESM-1b")))
    return ids, seqs


def _input_stats(run: ShardRun, lengths: np.ndarray) -> dict[str, Any]:
    return {
        "n_proteins": len(run.ids),
        "n_residues": int(lengths.sum()),
        "share_over_1022": float((lengths > run.settings.max_residues).mean()),
        "max_length": int(lengths.max()),
        "input_hash": run.key_params["input_sha256"],
        "cache_key": cache.cache_key(run.key_params),
        "model_label": run.settings.label,
        "device": str(run.device),
        "precision": run.settings.precision,
        "world_size": run.dist.world_size,
    }


def _complete_or_embed(run: ShardRun) -> tuple[dict[str, Any], np.ndarray, int]:
    """(manifest, proteins computed now, shards repaired): a complete, undamaged cache as it is, else the
    missing shards embedded (this rank's share) and the manifest written."""
    manifest = cache.read_manifest(run.cache_dir)
    computed = np.zeros(len(run.ids), dtype=bool)
    repaired = 0
    if manifest is not None and run.dist.rank == 0:
        manifest, repaired = _drop_damaged(run.cache_dir, manifest)
    if manifest is None:
        run.cache_dir.mkdir(parents=True, exist_ok=True)
        write_json(run.cache_dir / cache.KEY_FILE, run.key_params, sort_keys=True)
        created_pg = init_distributed(run.dist, run.device)
        try:
            manifest, computed = _run_shards(run)
        finally:
            if created_pg:
                torch.distributed.destroy_process_group()
    return manifest, computed, repaired


class ShardPlan(NamedTuple):
    ranges: list[tuple[int, int]]  # proteins of each shard
    unit_lists: list[list[str]]  # the units (whole sequences, chunks or windows) of each protein
    counts: np.ndarray  # units per protein
    rows: np.ndarray  # cache rows per protein (chunks: one per unit; else one)
    todo: list[int]  # this rank's shards not yet on disk


def _plan(run: ShardRun) -> ShardPlan:
    s = run.settings
    ranges = cache.shard_ranges(len(run.ids), run.shard_size)
    unit_lists = [units.split_units(q, s.strategy, s.window, s.stride, s.max_residues) for q in run.seqs]
    counts = np.array([len(u) for u in unit_lists], dtype=np.int64)
    rows = counts if s.strategy == "chunks" else np.ones(len(run.ids), dtype=np.int64)
    mine = [k for k in range(len(ranges)) if k % run.dist.world_size == run.dist.rank]
    todo = [
        k for k in mine if not cache.shard_done(run.cache_dir / cache.shard_name(k), int(rows[slice(*ranges[k])].sum()))
    ]
    return ShardPlan(ranges, unit_lists, counts, rows, todo)


def _run_shards(run: ShardRun) -> ShardsDone:
    """Embed this rank's missing shards; rank 0 then writes the manifest, the other ranks wait for it."""
    plan = _plan(run)
    computed = np.zeros(len(run.ids), dtype=bool)
    layer = run.key_params["layer"] if run.key_params["layer"] >= 0 else None
    if plan.todo or layer is None:
        model, _ = load_esm(run.settings.esm_model)
        layer = resolve_layer(run.settings.layer, model.num_layers)
    if plan.todo:
        computed = _embed_shards(run, plan, model.to(run.device), layer)
    barrier(run.dist)
    if run.dist.rank != 0:
        barrier(run.dist)
        return ShardsDone(_wait_manifest(run.cache_dir), computed)
    manifest = cache.finalize(
        run.cache_dir, run.ids, plan.rows if run.settings.strategy == "chunks" else None, _manifest(run, plan, layer)
    )
    barrier(run.dist)
    return ShardsDone(manifest, computed)


def _embed_shards(run: ShardRun, plan: ShardPlan, model: Any, layer: int) -> np.ndarray:
    """Embed and write the shards in plan.todo; returns which proteins were computed."""
    s = run.settings
    computed = np.zeros(len(run.ids), dtype=bool)
    total = sum(len(u) for k in plan.todo for u_list in plan.unit_lists[slice(*plan.ranges[k])] for u in u_list)
    bar = progress_bar(
        total=total,
        unit="res",
        unit_scale=True,
        desc=f"embed rank {run.dist.rank}" if run.dist.world_size > 1 else "embed",
        disable=not run.progress,
        dynamic_ncols=True,
    )
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    for k in plan.todo:
        lo, hi = plan.ranges[k]
        flat = [u for u_list in plan.unit_lists[lo:hi] for u in u_list]
        vecs = embed_units(
            model, alphabet, flat, layer, s.pooling, run.toks_per_batch, run.device, run.dtype, bar.update
        )
        combined = units.combine(vecs, plan.counts[lo:hi], s.strategy, s.pooling)
        cache.write_shard(run.cache_dir / cache.shard_name(k), combined)
        computed[lo:hi] = True
    bar.close()
    return computed


def _manifest(run: ShardRun, plan: ShardPlan, layer: int) -> dict[str, Any]:
    """The cache's manifest (rank 0, once every rank has written its shards)."""
    s = run.settings
    shard_files = [cache.shard_name(k) for k in range(len(plan.ranges))]
    missing = [f for f in shard_files if not (run.cache_dir / f).is_file()]
    if missing:
        raise RuntimeError(f"{run.cache_dir}: shards {missing[:5]} missing after all ranks finished")
    dim = np.load(run.cache_dir / shard_files[0], mmap_mode="r").shape[1]
    return {
        "key": run.key_params,
        "esm_model": str(s.esm_model),
        "model_label": s.label,
        "layer": int(layer),
        "strategy": s.strategy,
        "window": s.window,
        "stride": s.stride,
        "pooling": s.pooling,
        "max_residues": s.max_residues,
        "precision": run.key_params["precision"],
        "n_proteins": len(run.ids),
        "n_vectors": int(plan.rows.sum()),
        "dim": int(dim),
        "dtype": "float16",
        "ragged": s.strategy == "chunks",
        "shard_size": run.shard_size,
        "shards": [
            {"file": f, "proteins": list(r), "rows": int(plan.rows[slice(*r)].sum())}
            for f, r in zip(shard_files, plan.ranges)
        ],
    }


def _wait_manifest(cache_dir: Path) -> dict:
    manifest = cache.read_manifest(cache_dir)
    if manifest is None:
        raise RuntimeError(f"{cache_dir}: rank 0 did not write the manifest")
    return manifest
