"""`embed`: ESM-2 embeddings of the prepared proteins (or `--fasta`) into the resumable cache."""

from __future__ import annotations

import sys

from cafa_mlflow.config.flags import parse_params
from cafa_mlflow.console import run_entry
from cafa_mlflow.embed.settings import EmbedSettings
from cafa_mlflow.tracking import runs
from cafa_mlflow.workflows.embed import embed_roles


def main(argv=None) -> dict:
    params, _ = parse_params(argv, "cafa embed", __doc__, own="embed")
    settings = EmbedSettings.from_block(params.embed)
    logged = {**params.embed.to_dict(), "esm_model": settings.label}
    del logged["fasta"], logged["out"]
    with runs.start_run(params, "embed", extra_params=logged):
        index = embed_roles(params)
    return index


if __name__ == "__main__":
    sys.exit(run_entry(main))
