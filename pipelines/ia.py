"""`cafa ia`: information accretion from annotations, written as an IA file (the computation is
cafa_mlflow/go/information_accretion.py)."""

from __future__ import annotations

import argparse
import logging

import pandas as pd

from cafa_mlflow.errors import InputError
from cafa_mlflow.go.annotations import resolve_terms
from cafa_mlflow.go.information_accretion import compute_ia
from cafa_mlflow.go.labels import label_matrix
from cafa_mlflow.go.ontology import load_obo
from cafa_mlflow.io.ia import write_ia
from cafa_mlflow.io.outputs import mark_files
from cafa_mlflow.io.terms import read_terms
from cafa_mlflow.io.text import claim_files

log = logging.getLogger(__name__)


def add_ia_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--obo", required=True, help="ontology file (OBO, plain/.gz/.xz)")
    parser.add_argument("--terms", required=True, help="annotations EntryID<TAB>term[<TAB>aspect] (raw or propagated)")
    parser.add_argument("--out", required=True, help="IA file to write: GO:id<TAB>IA, no header")


def run_ia(args: argparse.Namespace) -> int:
    """`cafa ia`: compute IA from annotations and write it atomically; nothing is written on error."""
    claim_files({"--obo": args.obo, "--terms": args.terms}, {"--out": args.out})
    ontology = load_obo(args.obo)
    annotations = resolve_terms(read_terms(args.terms), ontology, source=str(args.terms))
    proteins = list(pd.unique(annotations["protein"]))
    if not proteins:
        raise InputError(
            f"{args.terms}: no annotation uses a live term of {args.obo}; no IA written (wrong ontology or file?)."
        )
    ia = compute_ia(label_matrix(annotations, ontology, proteins), ontology, propagated=True)
    write_ia(args.out, ia)
    mark_files(args.out)
    log.info(
        "%s: IA of %d terms from %d proteins (%d terms > 0)", args.out, len(ia), len(proteins), int((ia > 0).sum())
    )
    print(f"wrote {args.out}: {len(ia)} terms, {len(proteins)} proteins, {int((ia > 0).sum())} terms with IA > 0")
    return 0
