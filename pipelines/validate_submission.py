"""`cafa validate-submission`: check a CAFA-6 submission file against every rule (and an ontology)."""

from __future__ import annotations

import argparse

from cafa_mlflow.io.submission_check import validate_submission


def add_validate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="submission TSV (plain, .gz or .xz)")
    parser.add_argument("--obo", default=None, help="also flag GO ids unknown to or obsolete in this ontology")
    parser.add_argument(
        "--max-terms",
        type=int,
        default=None,
        help="most terms allowed per protein (default: params.yaml submission.max_terms)",
    )
    parser.add_argument("--show", type=int, default=50, help="print at most this many violations")


def run_validate(args: argparse.Namespace) -> int:
    """Print violations (first --show, then counts per rule); return 1 when any, else 0 and a summary."""
    ontology = None
    if args.obo:
        from cafa_mlflow.go.ontology import load_obo  # only with --obo

        ontology = load_obo(args.obo)
    if args.max_terms is None:
        from cafa_mlflow.config.params_file import load_params

        args.max_terms = load_params()["submission"]["max_terms"]
    found = validate_submission(args.file, ontology=ontology, max_terms=args.max_terms)
    if not found.counts:
        print(f"OK {args.file}: {found.n_proteins} proteins, {found.n_lines} lines ({found.n_text} Text lines)")
        return 0
    for violation in found[: args.show]:
        print(violation)
    total = sum(found.counts.values())
    print(f"INVALID {args.file}: {total} violations ({found.n_proteins} proteins, {found.n_lines} lines)")
    for rule, count in found.counts.most_common():
        print(f"  {rule}: {count}")
    return 1
