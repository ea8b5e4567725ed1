"""Reference vote sharpness: does leaning on the nearest hits help the test set, or only validation?

The reference member votes with each hit's bitscore. Raising the weights to a power p (bitscore**p) moves the vote
towards the best hits, which is what validation's echo rewards (a pool protein's own earlier annotations sit in its
orthologs' 2014 entries, "Validation echo of the reference"). This script searches once with a chain's saved
reference member, exactly as the chain did (validation in one call, out-of-fold per fold with the fold as the query
set, test in one call: p = 1 must reproduce the saved val/oof/test.npz), then for each p scores the member and
refits the blend (`ensemble.step`, `ensemble.search`, out-of-fold weights) over it and the chain's other saved
members, on validation and the visible test. It reads saved predictions and changes nothing.

    PYTHONPATH=$PWD python benchmarks/reference_vote_power.py --params-file F --powers 1,2,4
    # F: the chain's overrides (prepare.out, outputs.predictions, reference.out); the reference's MMseqs2 index in
    # the user cache is reused (CAFA_CACHE_DIR of the chain)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import command_line, publish, stamp  # noqa: E402

from cafa_mlflow.config.params_file import load_params  # noqa: E402
from cafa_mlflow.config.schema import Params  # noqa: E402
from cafa_mlflow.data.reference import sequence_hash  # noqa: E402
from cafa_mlflow.evaluation.scorer import flat_metrics  # noqa: E402
from cafa_mlflow.go.labels import TermMatrix, load_term_matrix  # noqa: E402
from cafa_mlflow.go.ontology import load_obo  # noqa: E402
from cafa_mlflow.predictors import registry  # noqa: E402
from cafa_mlflow.predictors.base import Predictor, ProteinSet  # noqa: E402
from cafa_mlflow.predictors.crossfit import oof_sample  # noqa: E402
from cafa_mlflow.workflows.common import ensure_prepared, member_folder, split_scorer  # noqa: E402
from cafa_mlflow.workflows.ensemble import fitting_data  # noqa: E402

TITLE = "## Reference vote sharpness: bitscore**p"
SPLITS = ("val", "oof", "test")
MEMBER = "reference"


def search_like_the_chain(model, params: Params, prepared) -> dict[str, tuple[list[str], pd.DataFrame, np.ndarray]]:
    """(ids, voting hits, query sequence hashes) per split, each query searched in the call the chain made."""
    out = {}
    for split, fasta in (("val", prepared.train_fasta), ("test", prepared.test_fasta)):
        ids = prepared.ids(split)
        model.set_query_set([], [])  # no query set, as the chain's validation and test calls
        proteins = ProteinSet(ids, fasta=fasta)
        model.predict(proteins)
        out[split] = (ids, model.hits, sequence_hash(proteins.read_sequences()))
    train_ids = prepared.ids("train")
    folds = prepared.folds(params.folds.k, params.folds.seed)
    wanted = np.zeros(len(folds), bool)
    wanted[oof_sample(len(folds), params.folds.oof_proteins, params.folds.seed)] = True
    parts = []
    for f in np.unique(folds):
        whole = [train_ids[i] for i in np.flatnonzero(folds == f)]
        inside = [train_ids[i] for i in np.flatnonzero((folds == f) & wanted)]
        model.set_query_set(whole, ProteinSet(whole, fasta=prepared.train_fasta).read_sequences())
        proteins = ProteinSet(inside, fasta=prepared.train_fasta)
        model.predict(proteins)
        parts.append((inside, model.hits, sequence_hash(proteins.read_sequences())))
    ids = [i for p in parts for i in p[0]]
    out["oof"] = (ids, pd.concat([p[1] for p in parts], ignore_index=True), np.concatenate([p[2] for p in parts]))
    return out


def vote_with_power(model, searched: tuple, power: float) -> TermMatrix:
    """The member's vote of the saved hits with bitscore**power as each hit's weight (power 1: the member's own)."""
    ids, hits, qhash = searched
    model.hits = hits.assign(bitscore=hits["bitscore"].astype(np.float64) ** power)
    return model._vote(ids, qhash, {})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params-file", default=None, help="YAML of keys overriding params.yaml (the chain's)")
    ap.add_argument("--powers", default="1,2,4", help="comma-separated exponents of the bitscore weight")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()
    params = Params.from_dict(load_params(None, params_file=args.params_file))
    prepared, onto = ensure_prepared(params), load_obo(params.data.obo)
    folder = Path(params.outputs.predictions)
    members = [m for m in params.ensemble.members if (folder / m / "oof.npz").exists()]
    saved = {s: {m: load_term_matrix(folder / m / f"{s}.npz") for m in members} for s in SPLITS}
    fit_set, oof_scorer, oof = fitting_data(params, prepared, onto, members, saved)
    oof_ids = list(next(iter(oof.values())).proteins)
    scorers = {"val": split_scorer(prepared, onto, "val", params.evaluate.threshold_step), "oof": oof_scorer}
    scorers["test"] = split_scorer(prepared, onto, "test", params.evaluate.threshold_step)
    rows_of = {"val": prepared.ids("val"), "oof": oof_ids, "test": prepared.ids("test")}

    loaded = {m: Predictor.load(member_folder(params, m) / "model") for m in members}
    model = loaded[MEMBER]
    started = time.process_time()
    searched = search_like_the_chain(model, params, prepared)
    search_cpu = time.process_time() - started

    rows, equal = [], {}
    for power in [float(p) for p in args.powers.split(",")]:
        votes = {s: vote_with_power(model, searched[s], power).reindex(proteins=rows_of[s]) for s in SPLITS}
        if power == 1:
            equal = {
                s: (votes[s].matrix != saved[s][MEMBER].reindex(proteins=rows_of[s]).matrix).nnz == 0 for s in SPLITS
            }
        preds = {
            s: {**{m: tm.reindex(proteins=rows_of[s]) for m, tm in saved[s].items()}, MEMBER: votes[s]} for s in SPLITS
        }
        preds["oof"] = {**oof, MEMBER: votes["oof"]}
        blend = registry.build(
            registry.ENSEMBLE_METHODS["blend"], params, onto, members=loaded, ia=prepared.ia
        )  # as the ensemble step
        blend.fit(fit_set, scorer=oof_scorer, member_predictions=preds["oof"])
        weights = blend.weights
        for name in ("reference", "blend"):
            cells = {}
            for s in ("val", "test"):
                tm = votes[s] if name == "reference" else blend.finalized(preds[s], rows_of[s], onto, params.submission)
                cells[s] = flat_metrics(scorers[s](tm))
            row = {"p": f"{power:g}", "predictor": name}
            for s in ("val", "test"):
                row.update({f"{s} {a}": round(cells[s][f"f_w_{a}"], 4) for a in ("BPO", "CCO", "MFO")})
                row[f"{s} mean"] = round(cells[s]["f_w_mean"], 4)
            row["gap"] = round(row["val mean"] - row["test mean"], 4)
            if name == "blend":
                row["reference weight BPO/CCO/MFO"] = "/".join(
                    f"{weights[a].get(MEMBER, 0):.2f}" for a in ("BPO", "CCO", "MFO")
                )
            rows.append(row)
        print(pd.DataFrame(rows).tail(2).to_string(index=False), flush=True)

    same = ", ".join(f"{s} {'equal' if ok else 'DIFFERENT'}" for s, ok in equal.items())
    text = "\n".join([
        TITLE, "", f"{stamp()}; command: `{command_line('reference_vote_power.py')}`.", "",
        f"The chain's saved reference member searched once per split as the chain searches ({search_cpu:.0f} CPU s in this",
        f"process, MMseqs2's own CPU not counted); p = 1 against the saved predictions: {same}. Each p: the member's",
        "weighted F-max (prepared IA), then the blend refitted on the out-of-fold predictions over it and the chain's",
        f"other saved members ({', '.join(m for m in members if m != MEMBER)}), scored on validation and the visible test:", "",
        pd.DataFrame(rows).fillna("").to_markdown(index=False), "",
    ])  # fmt: skip
    publish(text, write=not args.no_write)


if __name__ == "__main__":
    main()
