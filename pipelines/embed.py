"""`embed`: ESM-2 embeddings of the prepared proteins (or `--fasta`) into the resumable cache."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from cafa_mlflow import tracking
from cafa_mlflow.embed import embed_fasta
from cafa_mlflow.errors import InputError
from cafa_mlflow.io.text import atomic_write
from pipelines.common import parse_params, run_main

# embed first: its `out` is --out; prepare's is --prepare-out; tracking gives --uri, --experiment, ...
SECTIONS = ("embed", "prepare", "tracking")
INDEX = "index.json"
# params.yaml embed keys logged as MLflow params (esm_model is logged as its label, see model_label)
LOGGED_KEYS = ("layer", "strategy", "max_residues", "window", "stride", "pooling", "toks_per_batch", "precision",
               "device", "shard_size")


def fasta_roles(params: dict) -> dict[str, str]:
    """Which FASTA files this run embeds: {role: path}."""
    if params["embed"]["fasta"]:
        return {Path(params["embed"]["fasta"]).name.split(".")[0]: params["embed"]["fasta"]}
    prepared = Path(params["prepare"]["out"])
    return {role: str(prepared / f"{role}.fasta") for role in ("train", "test") if (prepared / f"{role}.fasta").exists()}


def cache_for(params: dict, role: str) -> Path:
    """The cache folder of a role (train/test) written by the last embed run with these settings."""
    index_file = Path(params["embed"]["out"]) / INDEX
    index = json.loads(index_file.read_text()) if index_file.exists() else {}
    if role not in index:
        raise InputError(f"{index_file}: no embeddings of the {role} proteins; run `cafa embed` (or `dvc repro embed`) first.")
    return Path(index[role])


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
    cfg = {k: v for k, v in params["embed"].items() if k not in ("fasta", "out")}
    roles = fasta_roles(params)
    if not roles:
        raise InputError(f"{params['prepare']['out']}: no prepared FASTA; run `cafa prepare` first or pass --fasta.")
    out = Path(params["embed"]["out"])
    index_file = out / INDEX
    index = json.loads(index_file.read_text()) if index_file.exists() else {}
    logged = {"esm_model": tracking.model_label(cfg["esm_model"]), **{k: cfg[k] for k in LOGGED_KEYS}}
    with tracking.start_run(params, "embed", extra_params=logged):
        results = []
        for role, fasta in roles.items():
            result = embed_fasta(fasta, out_dir=out, **cfg)  # tqdm bar with ETA on the console
            stats = result.stats
            index[role] = str(result.cache_dir)
            results.append(stats)
            tracking.log_params({f"n_proteins_{role}": stats["n_proteins"], f"input_hash_{role}": stats["input_hash"],
                                 f"cache_key_{role}": stats["cache_key"][:16]})
            tracking.log_metrics({k: v for k, v in stats.items() if isinstance(v, (int, float))}, prefix=f"{role}_")
            print(f"{role}: {stats['n_proteins']} proteins -> {index[role]} ({stats['residues_per_s']:.0f} residues/s)")
        tracking.log_params({"n_proteins": sum(r["n_proteins"] for r in results), "resolved_layer": results[0]["layer"],
                             "input_hash": results[0]["input_hash"] if len(results) == 1
                             else ",".join(f"{role}:{r['input_hash'][:16]}" for role, r in zip(roles, results))})
        tracking.log_metrics(_totals(results))
        with atomic_write(index_file) as handle:
            json.dump(index, handle, indent=1)
        tracking.log_artifacts([index_file])
    return index


if __name__ == "__main__":
    sys.exit(run_main(main))
