"""`cafa explain --fasta F --protein ACC [--term GO:...]`: why the registered model (or any model URI) predicts
each GO term for one protein (the table is built by cafa_mlflow/workflows/explain.py)."""

from __future__ import annotations

import argparse
import os

from cafa_mlflow.errors import InputError
from cafa_mlflow.io.fasta import read_fasta
from cafa_mlflow.serving.model_loader import load_model
from cafa_mlflow.workflows.explain import explain


def add_explain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fasta", required=True, help="FASTA holding the protein (plain, .gz or .xz)")
    parser.add_argument("--protein", required=True, help="its accession (the first word of its header)")
    parser.add_argument("--term", action="append", default=None, help="only this GO term (repeatable)")
    parser.add_argument("--model-uri", default=None, help="default: models:/<tracking.registered_model>@champion")
    parser.add_argument("--top", type=int, default=3, help="training proteins shown per member and term (3)")
    parser.add_argument("--max-terms", type=int, default=20, help="the highest-scoring terms shown (20; 0 = all)")
    parser.add_argument("--params", default=None, help="parameter file (default: params.yaml): tracking store")


def run_explain(args: argparse.Namespace) -> int:
    import mlflow

    from cafa_mlflow.config.params_file import load_params
    from cafa_mlflow.serving.evidence import explain_table

    params = load_params(args.params)
    record = next((r for r in read_fasta(args.fasta) if r.id == args.protein), None)
    if record is None:
        raise InputError(f"{args.fasta}: no protein {args.protein!r}; give an accession from its headers.")
    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI") or params["tracking"]["uri"])
    uri = args.model_uri or f"models:/{params['tracking']['registered_model']}@champion"
    model = load_model(uri)  # one line naming the version, alias and missing path when artifacts are gone
    rows = explain(model, record.id, record.sequence, args.term, args.top)
    if not args.term and args.max_terms > 0:
        rows = rows.head(args.max_terms)
    onto = model.unwrap_python_model().ontology
    names = {t: onto.names[onto.index[t]] for t in rows["term"] if t in onto.index}
    print(f"{record.id} ({len(record.sequence)} residues), model {uri}: {len(rows)} term{'s' * (len(rows) != 1)} shown")
    print(explain_table(rows, names))
    return 0
