"""`embed`: ESM-2 embeddings of the prepared proteins (or `--fasta`) into the resumable cache."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from cafa_mlflow import tracking
from cafa_mlflow.embed import embed_fasta, matches_settings
from cafa_mlflow.errors import InputError
from cafa_mlflow.io.text import atomic_write
from pipelines.common import parse_params, run_main

# embed first: its `out` is --out; prepare's is --prepare-out; tracking gives --uri, --experiment, ...
SECTIONS = ("embed", "prepare", "tracking")
INDEX = "index.json"
log = logging.getLogger(__name__)
# params.yaml embed keys logged as MLflow params (esm_model is logged as its label, see model_label)
LOGGED_KEYS = (
    "layer",
    "strategy",
    "max_residues",
    "window",
    "stride",
    "pooling",
    "toks_per_batch",
    "precision",
    "device",
    "shard_size",
)


def fasta_roles(params: dict) -> dict[str, str]:
    """Which FASTA files this run embeds: {role: path}."""
    if params["embed"]["fasta"]:
        return {Path(params["embed"]["fasta"]).name.split(".")[0]: params["embed"]["fasta"]}
    prepared = Path(params["prepare"]["out"])
    return {
        role: str(prepared / f"{role}.fasta") for role in ("train", "test") if (prepared / f"{role}.fasta").exists()
    }


def cache_for(params: dict, role: str) -> Path:
    """The cache of a role's proteins (train/test) under the current embed settings.

    The last embed run's cache is used when it was made with these settings; otherwise (a fresh clone, or
    another esm_model/strategy than the last embed run) the prepared proteins are embedded now, so no step
    ever uses the vectors of another encoder than the one it logs."""
    index_file = Path(params["embed"]["out"]) / INDEX
    index = read_index(index_file)
    cfg = embed_settings(params["embed"])
    if role in index and matches_settings(index[role], **cfg):
        return Path(index[role])
    fasta = Path(params["prepare"]["out"]) / f"{role}.fasta"
    if not fasta.is_file():
        raise InputError(
            f"{index_file}: no embeddings of the {role} proteins and no {fasta} to embed; "
            "run `cafa prepare` (or `dvc repro prepare`) first."
        )
    log.info("no %s embeddings for esm_model=%s in %s: embedding %s now", role, cfg["esm_model"], index_file, fasta)
    cache_dir = embed_fasta(fasta, out_dir=params["embed"]["out"], **cfg).cache_dir
    write_index(index_file, {**read_index(index_file), role: str(cache_dir)})
    return cache_dir


def embed_settings(block: dict) -> dict:
    """embed_fasta's keyword arguments from params.yaml's embed block."""
    return {k: v for k, v in block.items() if k not in ("fasta", "out")}


def read_index(index_file: Path) -> dict[str, str]:
    return json.loads(index_file.read_text()) if index_file.exists() else {}


def write_index(index_file: Path, index: dict[str, str]) -> None:
    with atomic_write(index_file) as handle:
        json.dump(index, handle, indent=1)


def _totals(results: list[dict]) -> dict[str, float]:
    """Run-level metrics over all embedded FASTA files."""
    seconds = sum(r["seconds"] for r in results)
    n = sum(r["n_proteins"] for r in results)
    return {
        "n_proteins": n,
        "seconds": seconds,
        "residues_per_s": sum(r["residues_per_s"] * r["seconds"] for r in results) / seconds if seconds else 0.0,
        "proteins_per_s": sum(r["n_computed"] for r in results) / seconds if seconds else 0.0,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
        "share_over_1022": sum(r["share_over_1022"] * r["n_proteins"] for r in results) / n,
        "n_computed": sum(r["n_computed"] for r in results),
    }


def main(argv=None) -> dict:
    params, _ = parse_params(argv, "cafa embed", __doc__, SECTIONS)
    cfg = embed_settings(params["embed"])
    roles = fasta_roles(params)
    if not roles:
        raise InputError(f"{params['prepare']['out']}: no prepared FASTA; run `cafa prepare` first or pass --fasta.")
    out = Path(params["embed"]["out"])
    index_file = out / INDEX
    index = read_index(index_file)
    logged = {"esm_model": tracking.model_label(cfg["esm_model"]), **{k: cfg[k] for k in LOGGED_KEYS}}
    with tracking.start_run(params, "embed", extra_params=logged):
        results = []
        for role, fasta in roles.items():
            result = embed_fasta(fasta, out_dir=out, **cfg)  # tqdm bar with ETA on the console
            stats = result.stats
            index[role] = str(result.cache_dir)
            results.append(stats)
            tracking.log_params(
                {
                    f"n_proteins_{role}": stats["n_proteins"],
                    f"input_hash_{role}": stats["input_hash"],
                    f"cache_key_{role}": stats["cache_key"][:16],
                }
            )
            tracking.log_metrics({k: v for k, v in stats.items() if isinstance(v, (int, float))}, prefix=f"{role}_")
            print(f"{role}: {stats['n_proteins']} proteins -> {index[role]} ({stats['residues_per_s']:.0f} residues/s)")
        tracking.log_params(
            {
                "n_proteins": sum(r["n_proteins"] for r in results),
                "resolved_layer": results[0]["layer"],
                "input_hash": results[0]["input_hash"]
                if len(results) == 1
                else ",".join(f"{role}:{r['input_hash'][:16]}" for role, r in zip(roles, results)),
            }
        )
        tracking.log_metrics(_totals(results))
        write_index(index_file, index)
        tracking.log_artifacts([index_file])
    return index


if __name__ == "__main__":
    sys.exit(run_main(main))
