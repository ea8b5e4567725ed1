"""argparse wiring for `cafa make-tiny-esm` (`cafa embed` is pipelines/embed.py: flags from params.yaml)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cafa_mlflow.embed.model import make_tiny_esm, model_label


def add_tiny_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", required=True, help="checkpoint path ending in .pt; its contact-regression file is written beside it"
    )
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)


def run_make_tiny(args: argparse.Namespace) -> None:
    """Write a random tiny ESM-2 checkpoint (tests and smoke runs; never a real model)."""
    from cafa_mlflow.embed.model import regression_path
    from cafa_mlflow.io.outputs import mark_files
    from cafa_mlflow.io.text import claim_files

    files = {"--out": args.out, "its contact-regression file": regression_path(Path(args.out))}
    claim_files({}, files)
    path = make_tiny_esm(args.out, layers=args.layers, dim=args.dim, heads=args.heads, seed=args.seed)
    mark_files(*files.values())
    print(f"wrote {path} and its contact-regression file ({model_label(str(path))}: random weights, for tests only)")
