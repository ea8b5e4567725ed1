"""The `embed` workflow: every FASTA of the run into its cache, index.json updated, stats logged."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cafa_mlflow.embed import embed_fasta
from cafa_mlflow.embed.resolve import fasta_roles, read_index, runtime_options, write_index
from cafa_mlflow.embed.settings import EmbedSettings
from cafa_mlflow.errors import InputError
from cafa_mlflow.io.text import check_writable
from cafa_mlflow.tracking import runs

if TYPE_CHECKING:
    from cafa_mlflow.config.schema import Params


def totals(results: list[dict]) -> dict[str, float]:
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


def embed_roles(params: Params) -> dict[str, str]:
    """Embed the run's FASTA files (prepared train/test, or embed.fasta); returns {role: cache folder}."""
    block = params.embed
    roles = fasta_roles(block.fasta, params.prepare.out)
    if not roles:
        raise InputError(f"{params.prepare.out}: no prepared FASTA; run `cafa prepare` first or pass --fasta.")
    check_writable(block.out, folder=True)
    settings = EmbedSettings.from_block(block)
    index = read_index(block.out)
    results = []
    for role, fasta in roles.items():
        result = embed_fasta(fasta, settings, block.out, **runtime_options(block))  # tqdm bar with ETA
        stats = result.stats
        index[role] = str(result.cache_dir)
        results.append(stats)
        runs.log_params(
            {
                f"n_proteins_{role}": stats["n_proteins"],
                f"input_hash_{role}": stats["input_hash"],
                f"cache_key_{role}": stats["cache_key"][:16],
            }
        )
        runs.log_metrics({k: v for k, v in stats.items() if isinstance(v, (int, float))}, prefix=f"{role}_")
        repaired = stats.get("n_repaired_shards", 0)
        note = f"; re-embedded {repaired} damaged or missing shard(s)" if repaired else ""
        speed = f"{stats['residues_per_s']:.0f} residues/s" if stats["n_computed"] else "cached, every shard verified"
        print(f"{role}: {stats['n_proteins']} proteins -> {index[role]} ({speed}{note})")
    runs.log_params(
        {
            "n_proteins": sum(r["n_proteins"] for r in results),
            "resolved_layer": results[0]["layer"],
            "input_hash": results[0]["input_hash"]
            if len(results) == 1
            else ",".join(f"{role}:{r['input_hash'][:16]}" for role, r in zip(roles, results)),
        }
    )
    runs.log_metrics(totals(results))
    runs.log_artifacts([write_index(block.out, index)])
    return index
