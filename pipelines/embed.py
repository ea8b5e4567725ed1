"""`embed`: ESM-2 embeddings of the prepared proteins (or `--fasta`) into the resumable cache."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from cafa_mlflow import tracking
from cafa_mlflow.embed import embed_fasta
from cafa_mlflow.io.text import atomic_write
from pipelines.common import parse_params, run_main

SECTIONS = ("embed", "prepare")
INDEX = "index.json"


def fasta_roles(params: dict) -> dict[str, str]:
    """Which FASTA files this run embeds: {role: path}."""
    if params["embed"]["fasta"]:
        return {Path(params["embed"]["fasta"]).name.split(".")[0]: params["embed"]["fasta"]}
    prepared = Path(params["prepare"]["out"])
    return {role: str(prepared / f"{role}.fasta") for role in ("train", "test") if (prepared / f"{role}.fasta").exists()}


def cache_for(params: dict, role: str) -> Path:
    """The cache folder of a role (train/test) written by the last embed run with these settings."""
    from cafa_mlflow.errors import InputError
    index_file = Path(params["embed"]["out"]) / INDEX
    index = json.loads(index_file.read_text()) if index_file.exists() else {}
    if role not in index:
        raise InputError(f"{index_file}: no embeddings of the {role} proteins; run `cafa embed` (or `dvc repro embed`) first.")
    return Path(index[role])


def main(argv=None) -> dict:
    params, _ = parse_params(argv, "cafa embed", __doc__, SECTIONS)
    cfg = {k: v for k, v in params["embed"].items() if k not in ("fasta", "out")}
    roles = fasta_roles(params)
    if not roles:
        from cafa_mlflow.errors import InputError
        raise InputError(f"{params['prepare']['out']}: no prepared FASTA; run `cafa prepare` first or pass --fasta.")
    out = Path(params["embed"]["out"])
    index_file = out / INDEX
    index = json.loads(index_file.read_text()) if index_file.exists() else {}
    with tracking.start_run(params, "embed", extra_params=params["embed"]):
        for role, fasta in roles.items():
            result = embed_fasta(fasta, out_dir=out, **cfg)
            index[role] = str(result.cache_dir)
            stats = {k: v for k, v in result.stats.items() if isinstance(v, (int, float))}
            tracking.log_params({f"n_proteins_{role}": result.stats["n_proteins"], f"input_hash_{role}": result.stats["input_hash"]})
            tracking.log_metrics(stats, prefix=f"{role}_")
            print(f"{role}: {result.stats['n_proteins']} proteins -> {result.cache_dir} "
                  f"({result.stats['residues_per_s']:.0f} residues/s)")
        with atomic_write(index_file) as handle:
            json.dump(index, handle, indent=1)
        tracking.log_artifacts([index_file])
    return index


if __name__ == "__main__":
    sys.exit(run_main(main))
