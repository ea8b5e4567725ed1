"""How far weights and validation targets can move the shipped blend: two measurements on a chain's saved
predictions (`<outputs.predictions>/<member>/{val,test}.npz`, the shipped `ensemble/model`).

1. Where the weights are fitted: the shipped weights (out-of-fold), weights fitted on validation, and weights fitted
   on the visible test set itself (an oracle: the most any blend of these members can score there), each scored on
   validation and test.
2. Time-aware validation targets: each validation protein's 2019 terms that its own Swiss-Prot 2014-01 entry
   (found by accession in the shipped reference) did not already carry, propagated, i.e. what it gained after the
   reference was frozen; predictions of terms it already carried are left out (CAFA's partial-knowledge rule).
   Scored for every member next to the usual validation and the visible test.

    PYTHONPATH=$PWD python benchmarks/blend_ceiling.py --params-file F   # F: the chain's params overrides
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import command_line, publish, stamp  # noqa: E402
from validation_echo import truth_table  # noqa: E402

from cafa_mlflow.config.params_file import load_params  # noqa: E402
from cafa_mlflow.config.schema import Params  # noqa: E402
from cafa_mlflow.evaluation.scorer import Scorer, flat_metrics  # noqa: E402
from cafa_mlflow.go.labels import TermMatrix, load_term_matrix  # noqa: E402
from cafa_mlflow.go.ontology import load_obo  # noqa: E402
from cafa_mlflow.io.readback import read_json  # noqa: E402
from cafa_mlflow.predictors.base import term_aspects  # noqa: E402
from cafa_mlflow.predictors.combine.weights import combine, fit_weights  # noqa: E402
from cafa_mlflow.workflows.common import ensure_prepared  # noqa: E402

TITLE = "## Blend ceiling and time-aware validation targets"
SPLITS = ("val", "test")


def scores_of(result: dict) -> dict[str, float]:
    """Weighted F-max per aspect and their mean, rounded for the table."""
    out = {a: round(r["f_w"], 3) for a, r in result.items() if isinstance(r, dict) and "f_w" in r}
    return {**out, "mean": round(flat_metrics(result)["f_w_mean"], 3)}


def blend_rows(preds: dict, scorers: dict, onto, shipped: dict) -> list[dict]:
    """The shipped, validation-fitted and test-fitted weights, each scored on both splits."""
    weights = {"shipped (out-of-fold)": shipped}
    for split in SPLITS:
        empty = TermMatrix(scorers[split].proteins, [], sp.csr_matrix((len(scorers[split].proteins), 0)))
        fitted = fit_weights(preds[split], empty, lambda _t, p, s=split: scorers[s](p), onto, 0.05, "line")
        weights[f"fitted on {split}" + (" (oracle)" if split == "test" else "")] = fitted
    rows = []
    for name, w in weights.items():
        for split in SPLITS:
            terms = list(dict.fromkeys(t for tm in preds[split].values() for t in tm.terms))
            aspect = dict(zip(terms, term_aspects(terms, onto).tolist()))
            blended = combine(preds[split], w, aspect, proteins=list(scorers[split].proteins))
            rows.append({"weights": name, "scored on": split, **scores_of(scorers[split](blended))})
        rows[-1]["weights used"] = "; ".join(
            f"{a}: " + ", ".join(f"{m} {x:.2f}" for m, x in per.items() if x) for a, per in sorted(w.items())
        )
    return rows


def known_terms(annotations: pd.DataFrame, ids: list[str], onto) -> sp.csr_matrix:
    """Propagated terms of each protein's own 2014 entry (rows: ids; columns: the ontology's terms)."""
    sub = annotations[annotations["protein"].isin(set(ids))]
    rows, cols = pd.Index(ids).get_indexer(sub["protein"]), pd.Index(onto.terms).get_indexer(sub["term"])
    ok = cols >= 0
    raw = sp.csr_matrix((np.ones(ok.sum(), np.float32), (rows[ok], cols[ok])), shape=(len(ids), len(onto.terms)))
    return onto.propagate(raw).astype(bool).tocsr()


def without(tm: TermMatrix, known: sp.csr_matrix, ids: list[str], onto) -> TermMatrix:
    """`tm` with the cells of `known` (rows: ids, columns: ontology terms) removed."""
    k = known[pd.Index(ids).get_indexer(tm.proteins)][:, pd.Index(onto.terms).get_indexer(tm.terms)]
    m = (tm.matrix - tm.matrix.multiply(k)).tocsr()
    m.eliminate_zeros()
    return TermMatrix(tm.proteins, tm.terms, m)


def time_aware_rows(preds: dict, scorers: dict, onto, annotations: pd.DataFrame, ia) -> tuple[list[dict], str]:
    """Each member on validation, on validation's time-aware targets, and on the visible test; and how many
    validation proteins gained terms, per aspect."""
    ids = list(scorers["val"].proteins)
    known = known_terms(annotations, ids, onto)
    gained = scorers["val"].truth.astype(np.float32) - scorers["val"].truth.multiply(known).astype(np.float32)
    r, c = sp.csr_matrix(gained).nonzero()
    frame = pd.DataFrame({"protein": np.asarray(ids)[r], "term": np.asarray(onto.terms)[c]})
    novel = Scorer(onto, TermMatrix.from_frame(frame, proteins=ids, value=None), ia, 0.01)
    sizes = ", ".join(f"{a} {novel.n_proteins(a)}/{scorers['val'].n_proteins(a)}" for a in novel.aspects)
    rows = []
    for m in preds["val"]:
        rows.append({
            "member": m,
            "validation": scores_of(scorers["val"](preds["val"][m]))["mean"],
            "time-aware targets": scores_of(novel(without(preds["val"][m], known, ids, onto)))["mean"],
            "visible test": scores_of(scorers["test"](preds["test"][m]))["mean"],
        })  # fmt: skip
    return rows, sizes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params-file", default=None, help="YAML of keys overriding params.yaml (the chain's)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()
    params = Params.from_dict(load_params(None, params_file=args.params_file))
    prepared, onto = ensure_prepared(params), load_obo(params.data.obo)
    folder = Path(params.outputs.predictions)
    shipped = read_json(folder / "ensemble" / "model" / "ensemble.json")["weights"]
    members = list(next(iter(shipped.values())))
    preds, scorers = {}, {}
    for split in SPLITS:
        preds[split] = {m: load_term_matrix(folder / m / f"{split}.npz") for m in members}
        ids = list(preds[split][members[0]].proteins)
        truth = TermMatrix.from_frame(truth_table(prepared.truth_file(split), onto, ids), proteins=ids, value=None)
        scorers[split] = Scorer(onto, truth, prepared.ia, params.evaluate.threshold_step)
    blend = pd.DataFrame(blend_rows(preds, scorers, onto, shipped)).fillna("")
    annotations = pd.read_parquet(folder / "reference" / "model" / "annotations.parquet", columns=["protein", "term"])
    aware, sizes = time_aware_rows(preds, scorers, onto, annotations, prepared.ia)
    text = "\n".join([
        TITLE, "", f"{stamp()}; command: `{command_line('blend_ceiling.py')}` (reads saved predictions only).", "",
        "Weighted F-max (prepared IA) of the blend of the saved members, by where its weights were fitted:", "",
        blend.to_markdown(index=False), "",
        "Each member on validation, on validation's time-aware targets (terms gained after the 2014 reference,",
        "known terms left out of the predictions) and on the visible test (mean of the aspects); validation proteins",
        f"with gained terms / all, per aspect: {sizes}:", "",
        pd.DataFrame(aware).to_markdown(index=False), "",
    ])  # fmt: skip
    publish(text, write=not args.no_write)


if __name__ == "__main__":
    main()
