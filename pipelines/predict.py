"""`predict --fasta FASTA --out PATH`: the registered champion (or any model URI) scores a FASTA into a
CAFA-6 submission; the FASTA is embedded first (same settings as the model's members) when they need it.

`--shard i/N` scores the i-th of N contiguous blocks of the FASTA into PATH.shard-i-of-N (any scheduler, e.g. a
SLURM array; `cafa merge-shards --out PATH` joins them); `--engine ray` scores on a Ray cluster (`--ray-address`)."""

from __future__ import annotations

import sys
from pathlib import Path

from cafa_mlflow.config.flags import parse_params
from cafa_mlflow.console import run_entry
from cafa_mlflow.errors import ConfigError
from cafa_mlflow.io.text import check_writable
from cafa_mlflow.serving.model_loader import load_model, pinned_uri
from cafa_mlflow.tracking import runs
from cafa_mlflow.workflows.predict_batches import default_fasta
from cafa_mlflow.workflows.shards import manifest_path, parse_shard, part_path
from cafa_mlflow.workflows.submit import submit


def main(argv=None) -> Path:
    params, _ = parse_params(argv, "cafa predict", __doc__, own="predict")
    cfg = params.predict
    fasta, out = cfg.fasta or default_fasta(params), Path(cfg.out)
    uri = cfg.model_uri or f"models:/{params.tracking.registered_model}@champion"
    shard = parse_shard(cfg.shard) if cfg.shard else None
    if shard and cfg.engine == "ray":
        raise ConfigError("predict.shard and predict.engine=ray exclude each other: Ray runs every shard itself.")
    written = part_path(out, *shard) if shard else out
    evidence = str(part_path(cfg.evidence, *shard)) if shard and cfg.evidence else cfg.evidence
    check_writable(written)  # before loading the model and embedding: fail now, not after all the work
    if evidence:
        check_writable(Path(evidence))
    if cfg.engine == "ray":
        from cafa_mlflow.workflows.predict_ray import import_ray

        import_ray()  # a missing Ray is said before the run opens
    with runs.start_run(params, "predict", extra_params={**cfg.to_dict(), "fasta": fasta, "model_uri": uri}):
        pinned = pinned_uri(uri)  # shards and Ray workers load this version even if the alias moves
        model = load_model(uri)  # names the version, alias and missing path when artifacts are gone
        done = submit(model, pinned, fasta, out, params, shard)
        if done.ray_workers is not None:
            runs.log_params({"ray_workers": done.ray_workers})
        runs.log_metrics({"submission_lines": done.lines, "submission_proteins": done.proteins})
        runs.log_artifacts([done.path] + ([manifest_path(done.path)] if shard else []), "submission")
        if evidence:
            runs.log_artifacts([evidence], "evidence")
    what = f"shard {shard[0]} of {shard[1]}: " if shard else ""
    print(f"{what}submission: {done.path} ({done.proteins} proteins, {done.lines} lines) from {uri}")
    return done.path


if __name__ == "__main__":
    sys.exit(run_entry(main))
