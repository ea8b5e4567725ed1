"""`cafa stats`: dataset tables and plots from files; inside an MLflow run ($MLFLOW_RUN_ID) also logged there."""

from __future__ import annotations

import argparse
import json
import os

from cafa_mlflow.data.stats import TOP_TERMS, dataset_stats, plot_stats, print_stats, stats_metrics


def add_stats_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fasta", required=True, help="sequences (FASTA, plain/.gz/.xz)")
    parser.add_argument("--terms", required=True, help="annotations EntryID<TAB>term[<TAB>aspect]")
    parser.add_argument("--obo", required=True, help="ontology (OBO, plain/.gz/.xz)")
    parser.add_argument("--top", type=int, default=TOP_TERMS, help="most frequent terms listed per aspect")
    parser.add_argument("--plots", default=None, help="folder to write the PNG histograms into")
    parser.add_argument("--json", default=None, help="file to write the flat metrics into (JSON)")


def run_stats(args: argparse.Namespace) -> int:
    """`cafa stats`: print the tables; inside an MLflow run ($MLFLOW_RUN_ID) also log tables and plots."""
    from cafa_mlflow.io.text import claim_files

    claim_files({"--fasta": args.fasta, "--terms": args.terms, "--obo": args.obo}, {"--json": args.json})
    stats = dataset_stats(args.fasta, args.terms, args.obo, top_n=args.top)
    print_stats(stats)
    if args.plots:
        for path in plot_stats(stats, args.plots):
            print(f"wrote {path}")
    if args.json:
        from cafa_mlflow.io.outputs import mark_files
        from cafa_mlflow.io.text import atomic_write

        with atomic_write(args.json) as out:
            json.dump(stats_metrics(stats), out, indent=2)
        mark_files(args.json)
        print(f"wrote {args.json}")
    if os.environ.get("MLFLOW_RUN_ID"):
        from cafa_mlflow.tracking.runs import log_stats  # MLflow only inside a run

        log_stats(stats)  # MLflow's fluent API joins $MLFLOW_RUN_ID
    return 0
