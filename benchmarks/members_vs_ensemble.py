"""Members, simplex blend and learned stacker: weighted (and unweighted) F-max per aspect, validation vs test.

Reads what `cafa main` (or `dvc repro`) left in <outputs.predictions>/<member>/{val,test,oof}.npz, fits every
ensemble variant of --variants on those saved members (into outputs/bench_ensembles/, tracked in a throwaway
MLflow store, nothing registered), scores members, variants and the fixed 0.95 homology + 0.05 naive reference
with cafa_mlflow.evaluation.scorer against the prepared val/test truth, prints the table and refreshes the
"## Members vs ensemble" section of benchmarks/RESULTS.md.

    python benchmarks/members_vs_ensemble.py [--params params.yaml] [--variants blend,stacker,blend-val] [--no-write]

Variants: blend / stacker = ensemble.method, fitted on the members' out-of-fold predictions (fit_on oof);
`<method>-val` fits on the validation split instead (its validation score is then optimistic).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time
from pathlib import Path

from results_md import write_section  # benchmarks/results_md.py (run as `python benchmarks/<file>.py`)

from cafa_mlflow.config.schema import load_config
from cafa_mlflow.data.prepared import load_prepared
from cafa_mlflow.evaluation.scorer import Scorer, flat_metrics, read_truth
from cafa_mlflow.go.finalize import finalize
from cafa_mlflow.go.labels import load_term_matrix
from cafa_mlflow.go.ontology import ASPECTS, load_obo
from cafa_mlflow.predictors.combine.weights import combine

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Members vs ensemble"
REFERENCE = "0.95 homology + 0.05 naive"
REFERENCE_DB = "0.95 reference + 0.05 naive"  # the bar the ensemble must clear once the reference member is in


def fit_variants(params, variants: list[str], out: Path) -> dict[str, tuple[Path, float]]:
    """Fit each variant on the saved members; returns {variant: (predictions folder, seconds)}."""
    import mlflow

    from cafa_mlflow.workflows.ensemble import fit_ensemble

    done = {}
    with tempfile.TemporaryDirectory() as store:
        mlflow.set_tracking_uri(f"sqlite:///{store}/bench.db")
        for variant in variants:
            method, _, fit_on = variant.partition("-")
            folder = out / variant
            p = params.with_overrides(
                {"ensemble.method": method, "ensemble.fit_on": fit_on or "oof", "outputs.metrics": str(folder)}
            )
            start = time.perf_counter()
            with mlflow.start_run(run_name=f"bench {variant}"):
                fit_ensemble(p, register=False, out=folder)
            done[variant] = (folder, time.perf_counter() - start)
    return done


def scores(params, folders: dict[str, Path]) -> dict[str, dict[str, float]]:
    prepared = load_prepared(params.prepare.out)
    ontology = load_obo(params.data.obo)
    out: dict[str, dict[str, float]] = {}
    for split in ("val", "test"):
        truth_file = prepared.truth_file(split)
        if truth_file is None:
            continue
        scorer = Scorer(ontology, read_truth(truth_file, ontology), prepared.ia, params.evaluate.threshold_step)
        saved = {n: load_term_matrix(f / f"{split}.npz") for n, f in folders.items() if (f / f"{split}.npz").is_file()}
        if {"homology", "naive"} <= set(saved):
            ref = combine({"homology": saved["homology"], "naive": saved["naive"]}, {"homology": 0.95, "naive": 0.05})
            saved[REFERENCE] = finalize(ref, ontology, params.submission)
        if {"reference", "naive"} <= set(saved):
            ref = combine(
                {"reference": saved["reference"], "naive": saved["naive"]}, {"reference": 0.95, "naive": 0.05}
            )
            saved[REFERENCE_DB] = finalize(ref, ontology, params.submission)
        for name, tm in saved.items():
            out.setdefault(name, {}).update(flat_metrics(scorer(tm), f"{split}_"))
    return out


def encoder_label(params) -> str:
    """The encoder the cached embeddings were made with (the last `embed` run's index; params.yaml may name another)."""
    from cafa_mlflow.embed import load_embeddings
    from cafa_mlflow.embed.resolve import read_index

    index = read_index(params.embed.out)
    if "train" not in index:  # no embeddings: the table holds no embedding-based member
        return "none"
    return load_embeddings(index["train"]).manifest.get("model_label", "?")


def table(rows: dict[str, dict[str, float]], bold: str) -> str:
    cols = [(s, a) for s in ("val", "test") for a in (*ASPECTS, "mean")]
    head = "| method | " + " | ".join(f"{s} {a}" for s, a in cols) + " |"
    lines = [head, "|---" * (len(cols) + 1) + "|"]
    for name, m in rows.items():
        cells = [f"{m[f'{s}_f_w_{a}']:.3f} ({m[f'{s}_f_{a}']:.3f})" if f"{s}_f_w_{a}" in m else "–" for s, a in cols]
        lines.append(f"| {f'**{name}**' if name == bold else name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default=None, help="parameter file (default: params.yaml)")
    ap.add_argument("--variants", default="blend,stacker,blend-val", help="ensemble variants to fit and compare")
    ap.add_argument(
        "--members", default=None, help="ensemble.members to combine (default: params.yaml's), e.g. naive,homology"
    )
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()
    params = load_config(args.params)
    if args.members:
        params = params.with_overrides({"ensemble.members": args.members.split(",")})
    root = Path(params.outputs.predictions)
    folders = {name: root / name for name in params.ensemble.members}
    fitted = fit_variants(params, [v for v in args.variants.split(",") if v], root.parent / "bench_ensembles")
    folders.update({f"ensemble {v}": folder for v, (folder, _) in fitted.items()})
    if not args.members:
        folders["submitted ensemble"] = root / "ensemble"
    shipped = f"ensemble {params.ensemble.method}" + ("" if params.ensemble.fit_on == "oof" else "-val")
    body = table(scores(params, folders), shipped)
    timing = ", ".join(f"{v} {s:.0f} s" for v, (_, s) in fitted.items())
    print(body, f"\nfit + predict time per variant: {timing}", sep="\n")
    if not args.no_write:
        prep = params.prepare
        section = SECTION if not args.members else f"{SECTION}: members {', '.join(params.ensemble.members)} only"
        write_section(
            f"{section}\n\nCells: weighted F-max (unweighted F-max), cafa_mlflow.evaluation.scorer (= cafaeval), IA from "
            f"the prepared data. Machine: {os.cpu_count()} CPU cores ({platform.machine()}), date "
            f"{datetime.date.today().isoformat()}; data: prepare.subsample={prep.subsample}, test_subsample="
            f"{prep.test_subsample}, folds.k={params.folds.k}, folds.full_fit={params.folds.full_fit}, encoder "
            f"{encoder_label(params)} (`tiny:` = random weights made by `cafa make-tiny-esm`, offline); commands "
            "`make main ESM=tiny`, then `python benchmarks/members_vs_ensemble.py`.\n\n"
            "Validation = the homology-aware split (no training hit >= 40 % identity). Members score validation from "
            "their fit on the train split and test from their refit on the whole pool (folds.full_fit). Ensembles fit "
            "on the members' out-of-fold predictions of the train split, so their validation score is unfitted; "
            "`-val` variants fit on validation itself (optimistic there). The neural member's early stopping uses "
            "validation. The bold row is the method params.yaml ships (ensemble.method / fit_on)."
            + ("" if args.members else " `submitted ensemble` is what `make main` wrote.")
            + " Reference from docs/cafa.md on the same test set: "
            f"0.95 DIAMOND + 0.05 naive = 0.401.\n\n{body}\n\nFit + predict time per variant (s): {timing}.\n"
        )


if __name__ == "__main__":
    main()
