"""argparse wiring for `cafa embed` and `cafa make-tiny-esm` (the lead adds the subcommands in cafa_mlflow/cli.py)."""
from __future__ import annotations

import argparse
import json

from cafa_mlflow.embed.device import DEVICES, PRECISIONS
from cafa_mlflow.embed.model import make_tiny_esm, model_label
from cafa_mlflow.embed.runner import EmbedResult, embed_fasta
from cafa_mlflow.embed.units import POOLINGS, STRATEGIES

# params.yaml embed.<key> -> (type, choices); flags are --<key with dashes>.
EMBED_KEYS = {
    "esm_model": (str, None),
    "layer": (int, None),
    "strategy": (str, STRATEGIES),
    "max_residues": (int, None),
    "window": (int, None),
    "stride": (int, None),
    "pooling": (str, POOLINGS),
    "toks_per_batch": (int, None),
    "precision": (str, PRECISIONS),
    "device": (str, DEVICES),
    "shard_size": (int, None),
    "out": (str, None),
}


def add_embed_arguments(parser: argparse.ArgumentParser, defaults: dict) -> None:
    """Add --fasta and one flag per key of params.yaml's embed block (`defaults`)."""
    parser.add_argument("--fasta", required=True, help="protein FASTA (plain, .gz or .xz)")
    for key, (typ, choices) in EMBED_KEYS.items():
        parser.add_argument("--" + key.replace("_", "-"), dest=key, type=typ, choices=choices,
                            default=defaults.get(key), help=f"default: {defaults.get(key)} (params.yaml embed.{key})")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")


def run_embed(args: argparse.Namespace) -> EmbedResult:
    """Run embed_fasta from parsed arguments and print the cache folder and stats as JSON."""
    result = embed_fasta(
        args.fasta, args.esm_model, args.out, strategy=args.strategy, layer=args.layer, window=args.window,
        stride=args.stride, pooling=args.pooling, toks_per_batch=args.toks_per_batch, precision=args.precision,
        device=args.device, shard_size=args.shard_size, progress=args.progress, max_residues=args.max_residues,
    )
    print(json.dumps({"cache_dir": str(result.cache_dir), **result.stats}, indent=1))
    return result


def add_tiny_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="checkpoint path ending in .pt; its contact-regression file is written beside it")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)


def run_make_tiny(args: argparse.Namespace) -> None:
    """Write a random tiny ESM-2 checkpoint (tests and smoke runs; never a real model)."""
    path = make_tiny_esm(args.out, layers=args.layers, dim=args.dim, heads=args.heads, seed=args.seed)
    print(f"wrote {path} and its contact-regression file ({model_label(str(path))}: random weights, for tests only)")
