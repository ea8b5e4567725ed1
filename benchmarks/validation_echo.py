"""Validation echo of the reference: how much of a validation protein's truth its own 2014 reference entry already
holds, and how much of the reference member's validation score comes from hits that echo it.

The training pool's labels are experimental annotations of 2019 and its sequences Swiss-Prot 2014-01 entries; the
reference is Swiss-Prot 2014-01 with annotations of every evidence kind. For the validation and the visible test
proteins this prints (and writes to RESULTS.md, section "Validation echo of the reference: N validation / M test proteins"):
- how many truth rows (leaf terms) are already in the protein's own 2014 entry (found by accession or identical
  sequence), and how many (protein, aspect) pairs have none of their terms there;
- the reference member's weighted F-max under each `reference.holdout_own_terms` rule (the hits' transfer of the
  own entry's terms kept, its direct terms dropped, all its terms dropped), on validation and on the visible test
  set (where the shipped member applies no rule, and, for the record, with the rule applied to test too);
- the same on time-aware targets (validation truth restricted to terms absent from the own 2014 entry, then
  propagated), for the reference and homology members (the saved homology member's val.npz / metrics.json).

One DIAMOND search per split against the prepared reference; the rules are applied in memory to the same hits.

    PYTHONPATH=$PWD python benchmarks/validation_echo.py --params-file outputs/i30/sub.yaml
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import command_line, publish, stamp  # noqa: E402

from cafa_mlflow.config.params_file import load_params  # noqa: E402
from cafa_mlflow.config.schema import Params  # noqa: E402
from cafa_mlflow.data.reference import sequence_hash  # noqa: E402
from cafa_mlflow.evaluation.scorer import Scorer, flat_metrics  # noqa: E402
from cafa_mlflow.go.annotations import resolve_terms  # noqa: E402
from cafa_mlflow.go.labels import TermMatrix, load_term_matrix  # noqa: E402
from cafa_mlflow.go.ontology import load_obo  # noqa: E402
from cafa_mlflow.io.terms import read_terms  # noqa: E402
from cafa_mlflow.predictors import registry  # noqa: E402
from cafa_mlflow.predictors.base import ProteinSet, TrainSet  # noqa: E402
from cafa_mlflow.predictors.reference_echo import (  # noqa: E402
    copy_free_vote,
    masked_vote,
    own_entry_rows,
    own_term_mask,
    term_closure,
)
from cafa_mlflow.workflows.common import ensure_prepared  # noqa: E402

TITLE = "## Validation echo of the reference: {val} validation / {test} test proteins"
RULES = ("vote", "drop_direct", "drop_copies", "drop_propagated")


def own_terms(pred, rows: np.ndarray) -> list[set[str]]:
    """The propagated terms of each query's own entry (empty without one)."""
    labels = pred.ref.labels
    return [set() if r < 0 else {labels.terms[j] for j in labels.matrix[r].indices} for r in rows]


def echo_stats(truth: pd.DataFrame, ids: list[str], rows: np.ndarray, known: list[set[str]], how: np.ndarray) -> dict:
    """Counts of truth rows (leaf terms) in the own entry and of (protein, aspect) pairs with none there."""
    where = pd.Series(range(len(ids)), index=ids)
    inside = np.array([t in known[where[p]] for p, t in zip(truth["protein"], truth["term"])], dtype=bool)
    pairs = truth.assign(inside=inside).groupby(["protein", "aspect"])["inside"].any()
    return {
        "proteins": len(ids),
        "own entry by accession": int((how == "accession").sum()),
        "own entry by sequence only": int((how == "sequence").sum()),
        "truth rows": len(truth),
        "in own 2014 entry": int(inside.sum()),
        "share": f"{inside.mean():.0%}",
        "(protein, aspect) pairs": len(pairs),
        "pairs with none there": int((~pairs).sum()),
    }


def gained_truth(truth: pd.DataFrame, ids: list[str], known: list[set[str]]) -> pd.DataFrame:
    """Time-aware targets: the truth rows whose term is absent from the protein's own 2014 entry."""
    where = pd.Series(range(len(ids)), index=ids)
    keep = [t not in known[where[p]] for p, t in zip(truth["protein"], truth["term"])]
    return truth[np.asarray(keep, dtype=bool)]


def score(scorer: Scorer, tm: TermMatrix) -> float:
    return flat_metrics(scorer(tm))["f_w_mean"]


def search_split(
    pred, prepared, split: str, cache: Path | None
) -> tuple[list[str], np.ndarray, pd.DataFrame, np.ndarray, np.ndarray]:
    """(ids, sequence hashes, the member's hits as shipped, own-entry rows, how each was found); the hits are
    kept in `cache`/<split>_hits.parquet (reused when there, e.g. once the homology member is saved too)."""
    ids = prepared.ids(split)
    seqs = prepared.sequences(split, ids)
    saved = cache / f"{split}_{prepared.split_id}_hits.parquet" if cache else None
    if saved is not None and saved.is_file():
        pred.hits = pd.read_parquet(saved)
    else:
        t0 = time.perf_counter()
        pred.predict(ProteinSet(ids, fasta=prepared.fasta(split), sequences=seqs))
        print(f"{split}: {len(ids)} queries searched in {time.perf_counter() - t0:.0f} s", flush=True)
        if saved is not None:
            saved.parent.mkdir(parents=True, exist_ok=True)
            pred.hits.to_parquet(saved, index=False)
    qhash = sequence_hash(seqs)
    rows = own_entry_rows(ids, qhash, pred.ref.labels.proteins, pred.ref.seq_hash)
    by_acc = pd.Index(pred.ref.labels.proteins).get_indexer(ids) >= 0
    how = np.where(by_acc, "accession", np.where(rows >= 0, "sequence", "none"))
    return ids, qhash, pred.hits.copy(), rows, how


def rule_predictions(pred, ids: list[str], hits: pd.DataFrame, rows: np.ndarray, direct: pd.DataFrame) -> dict:
    """The member's vote under each holdout_own_terms rule, applied to every query of `ids`."""
    out = {}
    for rule in ("vote", "drop_direct", "drop_propagated"):
        use = rows if rule != "vote" else np.full(len(ids), -1)
        mask = own_term_mask(use, pred.ref.labels, direct if rule == "drop_direct" else None, pred.root_col)
        out[rule] = masked_vote(hits, ids, pred.ref.labels, mask, pred.root_col)
    closure = term_closure(pred.ref.labels.terms, pred.ontology)
    out["drop_copies"] = copy_free_vote(hits, ids, pred.ref.labels, rows, direct, closure, pred.root_col)
    return out


def truth_table(path: Path, ontology, ids: list[str]) -> pd.DataFrame:
    table = resolve_terms(read_terms(path), ontology, str(path))
    return table[table["protein"].isin(set(ids))].drop_duplicates(["protein", "term"])


def measure(params: Params, cache: Path | None) -> dict:
    prepared = ensure_prepared(params)
    ontology = load_obo(params.data.obo)
    pred = registry.build("reference", params, ontology).fit(TrainSet(prepared.ids("train"), labels=prepared.labels))
    direct = pred.ref.annotations()[["protein", "term"]].drop_duplicates()
    step, out = params.evaluate.threshold_step, {"stats": {}, "scores": {}}
    for split in ("val", "test"):
        ids, _, hits, rows, how = search_split(pred, prepared, split, cache)
        truth = truth_table(prepared.truth_file(split), ontology, ids)
        known = own_terms(pred, rows)
        out["stats"][split] = echo_stats(truth, ids, rows, known, how)
        variants = {"all": truth}
        if split == "val":
            variants["time-aware (gained terms)"] = gained_truth(truth, ids, known)
        scorers = {k: Scorer(ontology, TermMatrix.from_frame(t, proteins=ids, value=None), prepared.ia, step)
                   for k, t in variants.items()}  # fmt: skip
        for rule, tm in rule_predictions(pred, ids, hits, rows, direct).items():
            for k, scorer in scorers.items():
                out["scores"][(split, k, rule)] = score(scorer, tm)
        homology = Path(params.outputs.predictions) / "homology" / f"{split}.npz"
        if homology.is_file():
            for k, scorer in scorers.items():
                out["scores"][(split, k, "homology")] = score(scorer, load_term_matrix(homology))
    return out


def chain_table(chains: list[str]) -> str:
    """Members and blend of saved chains (`RULE=PREDICTIONS_DIR`, each with reference/ and ensemble/ folders, e.g.
    `cafa member` + `cafa ensemble` under one holdout_own_terms rule): validation vs visible test, the blend's
    weight on the reference per aspect."""
    rows = []
    for chain in chains:
        rule, _, folder = chain.partition("=")
        for member in ("homology", "reference", "ensemble"):
            path = Path(folder) / member / "metrics.json"
            if not path.is_file():
                continue
            m = json.loads(path.read_text())
            row = {"holdout_own_terms": rule, "member": member if member != "ensemble" else "blend"}
            row.update({"validation": f"{m['val_f_w_mean']:.3f}", "visible test": f"{m['test_f_w_mean']:.3f}"})
            row["gap"] = f"{m['val_f_w_mean'] - m['test_f_w_mean']:+.3f}"
            weights = Path(folder) / member / "model" / "ensemble.json"
            if weights.is_file():
                w = json.loads(weights.read_text())["weights"]
                row["reference weight BPO/CCO/MFO"] = "/".join(f"{w[a].get('reference', 0):.2f}" for a in sorted(w))
            rows.append(row)
    return pd.DataFrame(rows).fillna("").to_markdown(index=False) if rows else ""


def overrides(params_file: str | None) -> str:
    """The keys a params file overrides, flattened (`block.key=value`), for the section's header."""
    if not params_file:
        return "none (params.yaml)"
    tree = yaml.safe_load(Path(params_file).read_text()) or {}
    return ", ".join(f"{block}.{key}={value}" for block, keys in tree.items() for key, value in keys.items())


def markdown(result: dict, command: str, chains: list[str]) -> str:
    stats = pd.DataFrame(result["stats"]).T.rename_axis("split").reset_index()
    s = result["scores"]
    rows = []
    for rule in (*RULES, "homology"):
        if ("val", "all", rule) not in s:
            continue
        val, test = s[("val", "all", rule)], s[("test", "all", "vote" if rule in RULES else rule)]
        rows.append({
            "member (holdout_own_terms rule)": "homology (pool)" if rule == "homology" else f"reference ({rule})",
            "validation": f"{val:.3f}",
            "validation, time-aware targets": f"{s[('val', 'time-aware (gained terms)', rule)]:.3f}",
            "visible test (shipped)": f"{test:.3f}",
            "gap val - test": f"{val - test:+.3f}",
            "test, rule applied to test too": f"{s[('test', 'all', rule)]:.3f}",
        })  # fmt: skip
    st = result["stats"]
    cause = (
        f"Cause: {st['val']['in own 2014 entry']:,} of {st['val']['truth rows']:,} validation truth rows "
        f"({st['val']['share']}) are already in the protein's own 2014 entry, against {st['test']['in own 2014 entry']:,}"
        f" of {st['test']['truth rows']:,} ({st['test']['share']}) for the visible test set. The own entry never "
        "votes, but its orthologs' copies do: dropping the own entry's direct terms from the hits (`drop_direct`) "
        f"costs validation {s[('val', 'all', 'drop_direct')] - s[('val', 'all', 'vote')]:+.3f} and the test set, "
        f"where no experiment predates the reference, {s[('test', 'all', 'drop_direct')] - s[('test', 'all', 'vote')]:+.3f}"
        " (the rule applied to test for the record only)."
    )
    return "\n".join([
        TITLE.format(val=st["val"]["proteins"], test=st["test"]["proteins"]), "", f"{stamp()}; command: `{command}`; params overridden: {result['overrides']}.", "",
        "How much of each protein's truth (leaf terms) its own Swiss-Prot 2014-01 entry already holds (propagated):",
        "", stats.to_markdown(index=False), "",
        "Weighted F-max (mean of the aspects, prepared IA) of the reference member's vote under each",
        "`reference.holdout_own_terms` rule, from the same hits (validation queries are holdout queries; the shipped",
        "member applies no rule to test queries); homology from its saved member predictions:", "",
        pd.DataFrame(rows).to_markdown(index=False), "", cause, "",
        *(["The members fitted by `cafa member --predictor KIND --params-file F` (validation from the fit on train,",
            "out-of-fold predictions under the same rule) and the blend `cafa ensemble` fitted on their out-of-fold",
            "predictions (`ensemble.members=[naive, homology, reference]`), with F = the params above plus",
            "`reference.holdout_own_terms` = the rule:", "", chain_table(chains), ""]
          if chains else []),
    ])  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params-file", default=None, help="YAML of keys overriding params.yaml (a subsample)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument("--hits-cache", type=Path, default=None, help="a folder keeping each split's hits for a rerun")
    ap.add_argument("--chains", nargs="*", default=[], help="RULE=PREDICTIONS_DIR of saved members and blends")
    args = ap.parse_args()
    params = Params.from_dict(load_params(None, params_file=args.params_file))
    result = measure(params, args.hits_cache)
    result["overrides"] = overrides(args.params_file)
    print(json.dumps({"|".join(k): round(v, 4) for k, v in result["scores"].items()}, indent=1))
    publish(markdown(result, command_line("validation_echo.py"), args.chains), write=not args.no_write)


if __name__ == "__main__":
    main()
