"""`cafa merge-shards --out OUT [PARTS...]`: join the parts of `cafa predict --shard i/N` into the submission one
`cafa predict` writes (the checks and the join are cafa_mlflow/workflows/shards.py)."""

from __future__ import annotations

import argparse

from cafa_mlflow.errors import InputError
from cafa_mlflow.workflows.shards import merge_shards


def add_merge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="the submission to write (the --out the shards were given)")
    parser.add_argument("parts", nargs="*", help="part files (default: OUT.shard-*-of-* beside OUT)")
    parser.add_argument("--evidence", default=None, help="also join EVIDENCE.shard-i-of-N into EVIDENCE")


def run_merge(args: argparse.Namespace) -> int:
    """`cafa merge-shards`: join, then check the submission's rules."""
    from cafa_mlflow.io.submission import validate_submission

    result = merge_shards(args.out, args.parts, args.evidence)
    found = validate_submission(result.out)
    if found.counts:
        raise InputError(
            f"{result.out}: the merged submission breaks {sum(found.counts.values())} rules, e.g. {found[0]}."
        )
    print(f"submission: {result.out} ({found.n_proteins} proteins, {result.lines} lines) from {result.shards} shards")
    return 0
