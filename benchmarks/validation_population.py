"""Validation vs visible test by what the reference knew of a protein in 2014.

Every validation protein is a Swiss-Prot 2014-01 entry (the training pool's sequences are), with a median of about
ten direct GO terms there; half of the visible test proteins have no 2014 entry at all, and most of the others a
sparse one (they were first studied in 2019-2020). This groups the proteins of both splits by the number of distinct
direct GO terms of their own 2014 entry (found by accession; 0 = no entry) and scores every saved member of a chain
(`<outputs.predictions>/<member>/{val,test}.npz`) on each group, so that validation and test can be compared at equal
prior knowledge. Label-free grouping: only the 2014 reference is read, not the 2019 truth.

    PYTHONPATH=$PWD python benchmarks/validation_population.py --params-file F   # F: the chain's params overrides
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import command_line, publish, stamp  # noqa: E402
from validation_echo import truth_table  # noqa: E402

from cafa_mlflow.config.params_file import load_params  # noqa: E402
from cafa_mlflow.config.schema import Params  # noqa: E402
from cafa_mlflow.evaluation.scorer import Scorer, flat_metrics  # noqa: E402
from cafa_mlflow.go.labels import TermMatrix, load_term_matrix  # noqa: E402
from cafa_mlflow.go.ontology import load_obo  # noqa: E402
from cafa_mlflow.workflows.common import ensure_prepared  # noqa: E402

TITLE = "## Validation vs test at equal 2014 knowledge"
BINS = ((0, 0), (1, 3), (4, 8), (9, 15), (16, 30), (31, None))
MIN_PROTEINS = 30  # smaller groups are listed with their size only (F-max on a few proteins is noise)


def direct_term_counts(predictions: Path) -> pd.Series:
    """Distinct direct GO terms per protein of the reference the chain's reference member shipped."""
    table = pd.read_parquet(predictions / "reference" / "model" / "annotations.parquet", columns=["protein", "term"])
    return table.groupby("protein")["term"].nunique()


def label(lo: int, hi: int | None) -> str:
    return f"{lo}" if lo == hi else (f"{lo}-{hi}" if hi is not None else f">= {lo}")


def score_groups(params: Params, members: list[str]) -> pd.DataFrame:
    """One row per (split, group): proteins, share, and each member's weighted F-max (mean of the aspects)."""
    prepared, ontology = ensure_prepared(params), load_obo(params.data.obo)
    predictions = Path(params.outputs.predictions)
    counts, rows = direct_term_counts(predictions), []
    for split in ("val", "test"):
        preds = {m: load_term_matrix(predictions / m / f"{split}.npz") for m in members}
        ids = list(next(iter(preds.values())).proteins)
        n_terms = counts.reindex(ids).fillna(0).to_numpy()
        truth = truth_table(prepared.truth_file(split), ontology, ids)
        for lo, hi in ((0, None), *BINS):
            keep = (n_terms >= lo) & (n_terms <= (np.inf if hi is None else hi))
            sub = [p for p, k in zip(ids, keep) if k]
            row = {"split": split, "2014 direct terms": "all" if (lo, hi) == (0, None) else label(lo, hi)}
            row.update({"proteins": len(sub), "share": f"{len(sub) / len(ids):.0%}"})
            if len(sub) >= MIN_PROTEINS:
                tm = TermMatrix.from_frame(truth[truth["protein"].isin(set(sub))], proteins=sub, value=None)
                scorer = Scorer(ontology, tm, prepared.ia, params.evaluate.threshold_step)
                row.update({m: f"{flat_metrics(scorer(p))['f_w_mean']:.3f}" for m, p in preds.items()})
            rows.append(row)
    return pd.DataFrame(rows).fillna("")


def markdown(table: pd.DataFrame, command: str) -> str:
    return "\n".join([
        TITLE, "", f"{stamp()}; command: `{command}` (reads saved predictions only).", "",
        "Weighted F-max (mean of the aspects, prepared IA) of each saved member, validation (fit on train) and",
        "visible test (refit on the pool), per group of proteins by the number of distinct direct GO terms their",
        f"own Swiss-Prot 2014-01 entry carries (0 = no entry); groups under {MIN_PROTEINS} proteins are not scored:", "",
        table.to_markdown(index=False), "",
    ])  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params-file", default=None, help="YAML of keys overriding params.yaml (the chain's)")
    ap.add_argument("--members", default="naive,homology,reference,knn,neural,ensemble")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()
    params = Params.from_dict(load_params(None, params_file=args.params_file))
    table = score_groups(params, args.members.split(","))
    publish(markdown(table, command_line("validation_population.py")), write=not args.no_write)


if __name__ == "__main__":
    main()
