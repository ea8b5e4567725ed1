"""Peak memory of the library's in-memory steps at Kaggle's full shape: 82,404 training proteins,
224,309 test proteins, each step alone in its own process under GNU time (peak RSS).

    nice -n 10 python benchmarks/full_shape_memory.py --scaling /work/main/outputs/bench/scaling/4000

What is real: the drawn proteins (benchmarks/kaggle_shape.py: Swiss-Prot 2014, time-like split) and their GO
annotations, propagated as `cafa prepare` does (resolve_terms + label_matrix; vocabulary = prepare.min_count 5).
What is synthetic (computing the real thing would take hours): the neighbours (every test protein gets
`--hits` DIAMOND-like hits drawn at random among the training proteins, bitscores 30..1000: a worst case for the
vote, as random neighbours share fewer terms than homologs) and the members' test matrices of the ensemble probe
(per protein, the nnz per protein that a scaling run measured for that member (`--scaling`, else a guess), columns
drawn in proportion to the training frequency of the member's terms, scores drawn from that run's scores; blended with
the default main job's fitted weights).

Probes (each in its own process, `prlimit --as` caps it at --cap GiB so that a step that would exceed the machine
fails with MemoryError instead of taking it down; a capped probe is rerun on --fallback of the test proteins and
its peak extrapolated linearly):
  vote      homology's test prediction: hits_to_scores (hits table -> weights -> transfer.vote) for 224k queries
  naive     the naive prior for 224k proteins (NaivePredictor.predict)
  knn       knn's vote for 224k queries, blocks of 512 as knn_scores (k=10 random neighbours; no similarity search)
  ensemble  the ensemble step's test path: load 5 member test.npz, blend `combine` + finalize, save test.npz
  score     evaluation: Scorer over the 224k test proteins' real truth, scoring the ensemble probe's output
  evaluate  `cafa evaluate` of that output written as a submission file (read_submission + Scorer; the file is
            written beforehand by io.submission.write_submission, outside the measure)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
CODE = os.environ.get("FULL_SHAPE_CODE", str(ROOT))  # the library measured (--code: e.g. an export of main)
sys.path.insert(0, CODE)
sys.path.insert(0, str(ROOT / "benchmarks"))
CACHE = ROOT / "outputs" / "bench" / "full_shape"
POOL = Path("/work/main/outputs/bench/metastudent_pool.parquet")
OBO = ROOT / "data" / "sample" / "go-basic.obo.xz"
PROBES = ("vote", "naive", "knn", "ensemble", "score", "evaluate")
MEMBERS = ("naive", "homology", "knn", "neural", "reference")
# nnz per test protein of a member no scaling run (--scaling) has: a guess, reported with the results
DEFAULT_NNZ = {"naive": 670, "homology": 150, "knn": 400, "neural": 400, "reference": 600}
# the default main job's fitted weights (RESULTS.md, "Default main job with the reference: all five members")
WEIGHTS = {
    "BPO": {"homology": 0.10, "knn": 0.05, "naive": 0.05, "neural": 0.25, "reference": 0.55},
    "CCO": {"homology": 0.05, "knn": 0.05, "naive": 0.05, "neural": 0.25, "reference": 0.60},
    "MFO": {"homology": 0.15, "knn": 0.05, "naive": 0.30, "neural": 0.15, "reference": 0.35},
}
VOCAB_MEMBERS = ("naive", "neural")  # members over the vocabulary (prepare.min_count); the others: every carried term
SEED = 0


def ontology():
    from cafa_mlflow.go.ontology import load_obo

    return load_obo(OBO)


def setup(n_train: int, n_test: int, stats: dict[str, tuple], members: bool) -> dict[str, str]:
    """Real labels of the drawn proteins, the test truth, and (`members`) synthetic member test matrices (cached)."""
    from kaggle_shape import draw

    from cafa_mlflow.go.annotations import resolve_terms
    from cafa_mlflow.go.information_accretion import compute_ia
    from cafa_mlflow.go.labels import TermMatrix, label_matrix, save_term_matrix, select_terms

    CACHE.mkdir(parents=True, exist_ok=True)
    onto = ontology()
    if not (CACHE / "labels_all.npz").is_file():
        train, test = draw(pd.read_parquet(POOL), n_train, n_test)
        ann = train[["protein", "terms"]].explode("terms").rename(columns={"terms": "term"})
        ids = train["protein"].tolist()
        full = label_matrix(resolve_terms(ann, onto), onto, ids)
        carried = np.flatnonzero(full.matrix.getnnz(axis=0))  # what prepare keeps for transfer members
        save_term_matrix(
            CACHE / "labels_all.npz", TermMatrix(ids, [onto.terms[c] for c in carried], full.matrix[:, carried])
        )
        vocab = select_terms(full, onto.aspect, 5)
        save_term_matrix(
            CACHE / "labels_vocab.npz", TermMatrix(ids, [onto.terms[c] for c in vocab], full.matrix[:, vocab])
        )
        compute_ia(full, onto, propagated=True).to_json(CACHE / "ia.json")
        tann = test[["protein", "terms"]].explode("terms").rename(columns={"terms": "term"})
        truth = TermMatrix.from_frame(resolve_terms(tann, onto), proteins=test["protein"].tolist(), value=None)
        save_term_matrix(CACHE / "truth.npz", truth)
    files = {}
    for name in MEMBERS if members else ():
        per_protein, scores, source = stats[name]
        path = CACHE / f"member_{name}_{per_protein:.0f}_{source}.npz"
        if not path.is_file():
            save_term_matrix(path, synthetic_member(name, per_protein, scores))
        files[name] = str(path)
    return files


def synthetic_member(name: str, per_protein: float, scores: np.ndarray | None):
    """224k test rows with about `per_protein` scores each over the member's terms, columns drawn in proportion
    to their training frequency, values drawn from `scores` (a scaling run's; None: uniform 0.01..1). naive: its
    real prior."""
    from cafa_mlflow.go.labels import TermMatrix, load_term_matrix, max_csr
    from cafa_mlflow.predictors.base import TrainSet
    from cafa_mlflow.predictors.naive import NaivePredictor

    truth = load_term_matrix(CACHE / "truth.npz")
    ids = truth.proteins
    labels = load_term_matrix(CACHE / ("labels_vocab.npz" if name in VOCAB_MEMBERS else "labels_all.npz"))
    if name == "naive":
        return NaivePredictor(ontology(), "aspect", 0.01).fit(TrainSet.from_labels(labels)).predict(ids)
    rng = np.random.default_rng(SEED + MEMBERS.index(name))
    p = np.asarray(labels.matrix.getnnz(axis=0), dtype=np.float64)
    p /= p.sum()
    k = draws_for(p, per_protein)
    blocks = []
    for start in range(0, len(ids), 8192):
        n = min(8192, len(ids) - start)
        cols = rng.choice(len(p), size=n * k, p=p)
        vals = rng.uniform(0.01, 1.0, n * k) if scores is None else rng.choice(scores, n * k)
        blocks.append(max_csr(np.repeat(np.arange(n), k), cols, vals.astype(np.float32), (n, len(p))))
    return TermMatrix(ids, labels.terms, sp.vstack(blocks, format="csr"))


def draws_for(p: np.ndarray, distinct: float) -> int:
    """Draws with replacement (column probabilities p) that give about `distinct` different columns."""

    def expected(k: int) -> float:
        return float(np.sum(1 - np.power(1 - p, k)))

    hi = 1
    while expected(hi) < distinct and hi < 1 << 16:
        hi *= 2
    lo = hi // 2 + 1 if hi > 1 else 1
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if expected(mid) < distinct else (lo, mid)
    return lo


def synthetic_hits(query_ids: list[str], target_ids: list[str], per_query: int) -> pd.DataFrame:
    """DIAMOND-like hits table (string ids as `data.diamond.search` reads them), best bitscore first per query."""
    rng = np.random.default_rng(SEED)
    q = np.repeat(np.arange(len(query_ids)), per_query)
    t = rng.integers(0, len(target_ids), len(q))
    bits = np.sort(rng.uniform(30, 1000, (len(query_ids), per_query)), axis=1)[:, ::-1].ravel()
    hits = pd.DataFrame(
        {
            "qseqid": np.asarray(query_ids, dtype=object)[q],
            "sseqid": np.asarray(target_ids, dtype=object)[t],
            "pident": rng.uniform(20, 100, len(q)),
            "evalue": 10 ** rng.uniform(-100, -3, len(q)),
            "bitscore": bits,
        }
    )
    for column in ("qseqid", "sseqid"):  # one str object per cell, as read_csv makes them
        hits[column] = [str(x) + "" for x in hits[column]]
    return hits


def test_ids(fraction: float) -> list[str]:
    with np.load(CACHE / "truth.npz") as z:
        ids = z["proteins"].tolist()
    return ids[: int(round(len(ids) * fraction))]


def probe_vote(fraction: float, hits_per_query: int) -> dict:
    from cafa_mlflow.go.labels import load_term_matrix
    from cafa_mlflow.predictors.homology import hits_to_scores
    from cafa_mlflow.predictors.transfer import aspect_root_columns

    labels = load_term_matrix(CACHE / "labels_all.npz")
    root_col = aspect_root_columns(labels.terms, ontology())
    ids = test_ids(fraction)
    hits = synthetic_hits(ids, labels.proteins, hits_per_query)
    scores = hits_to_scores(hits, ids, labels, False, 0, root_col=root_col)
    return {"rows": len(ids), "nnz_per_protein": scores.matrix.nnz / len(ids)}


def probe_knn(fraction: float, k: int) -> dict:
    from cafa_mlflow.go.labels import load_term_matrix
    from cafa_mlflow.predictors.transfer import aspect_root_columns, vote

    labels = load_term_matrix(CACHE / "labels_all.npz")
    root_col = aspect_root_columns(labels.terms, ontology())
    ids = test_ids(fraction)
    rng = np.random.default_rng(SEED)
    blocks, n = [], labels.shape[0]
    for start in range(0, len(ids), 512):  # knn_scores' loop: one vote per block of 512 queries
        m = min(512, len(ids) - start)
        top = rng.integers(0, n, (m, k))
        w = rng.uniform(0.5, 1.0, (m, k))
        raw = sp.csr_matrix((w.ravel(), (np.repeat(np.arange(m), k), top.ravel())), shape=(m, n))
        blocks.append(vote(raw, labels.matrix, root_col))
    scores = sp.vstack(blocks, format="csr")
    return {"rows": len(ids), "nnz_per_protein": scores.nnz / len(ids)}


def probe_naive(fraction: float) -> dict:
    from cafa_mlflow.go.labels import load_term_matrix
    from cafa_mlflow.predictors.base import TrainSet
    from cafa_mlflow.predictors.naive import NaivePredictor

    labels = load_term_matrix(CACHE / "labels_vocab.npz")
    predictor = NaivePredictor(ontology(), "aspect", 0.01).fit(TrainSet.from_labels(labels))
    del labels
    ids = test_ids(fraction)
    scores = predictor.predict(ids)
    return {"rows": len(ids), "nnz_per_protein": scores.matrix.nnz / len(ids)}


def probe_ensemble(fraction: float, files: dict[str, str], label: str) -> dict:
    """As workflows/ensemble.fit_ensemble's test path: every member's test.npz loaded, combined, finalized, saved."""
    from types import SimpleNamespace

    from cafa_mlflow.go.labels import load_term_matrix, save_term_matrix
    from cafa_mlflow.predictors.combine.blend import EnsemblePredictor
    from cafa_mlflow.predictors.naive import NaivePredictor

    onto = ontology()
    preds = {name: load_term_matrix(files[name]) for name in MEMBERS}
    ids = test_ids(fraction)
    ensemble = EnsemblePredictor({name: NaivePredictor() for name in MEMBERS}, onto)
    ensemble.weights = WEIGHTS
    terms = list(dict.fromkeys(t for tm in preds.values() for t in tm.terms))
    ensemble.term_aspect = dict(zip(terms, onto.aspect[[onto.index[t] for t in terms]].tolist()))
    submission = SimpleNamespace(max_terms=1500, sig=3, min_score=0.001)
    if hasattr(ensemble, "finalized"):  # the blocked path: combine + finalize per block of proteins
        final = ensemble.finalized(preds, ids, onto, submission)
    else:
        from cafa_mlflow.go.finalize import finalize

        final = finalize(ensemble.combine(preds, ids), onto, submission)
    out = CACHE / (f"ensemble_test_{label}.npz" if fraction == 1 else "ensemble_test_part.npz")
    save_term_matrix(out, final)
    member_nnz = {name: round(tm.matrix.nnz / tm.shape[0], 1) for name, tm in preds.items()}
    return {"rows": len(ids), "nnz_per_protein": final.matrix.nnz / len(ids), "members": member_nnz}


def probe_score(fraction: float, label: str) -> dict:
    from cafa_mlflow.evaluation.scorer import Scorer
    from cafa_mlflow.go.labels import load_term_matrix

    onto = ontology()
    ids = test_ids(fraction)
    truth = load_term_matrix(CACHE / "truth.npz").reindex(proteins=ids)
    pred = load_term_matrix(CACHE / f"ensemble_test_{label}.npz")
    ia = pd.read_json(CACHE / "ia.json", typ="series").to_dict()
    result = Scorer(onto, truth, ia, 0.01)(pred)
    return {"rows": len(ids), "nnz_per_protein": pred.matrix.nnz / pred.shape[0], "f_w": result["mean_f_w"]}


def probe_evaluate(label: str) -> dict:
    """As `cafa evaluate`: truth, IA, then the submission file read (only the truth's proteins) and scored."""
    from cafa_mlflow.evaluation.files import score_files
    from cafa_mlflow.evaluation.scorer import Scorer
    from cafa_mlflow.go.labels import load_term_matrix

    truth = load_term_matrix(CACHE / "truth.npz")
    ia = pd.read_json(CACHE / "ia.json", typ="series").to_dict()
    scorer = Scorer(ontology(), truth, ia, 0.01)
    path = CACHE / f"submission_{label}.tsv"
    [(_, result, _)] = list(score_files(scorer, [path]))
    lines = sum(1 for _ in open(path))
    return {"rows": len(truth.proteins), "nnz_per_protein": lines / len(truth.proteins), "f_w": result["mean_f_w"]}


def write_file(label: str) -> None:
    """The ensemble probe's output as a submission file (for the evaluate probe), once."""
    from cafa_mlflow.go.labels import load_term_matrix
    from cafa_mlflow.io.submission import write_submission

    path = CACHE / f"submission_{label}.tsv"
    if not path.is_file():
        write_submission(path, load_term_matrix(CACHE / f"ensemble_test_{label}.npz"))


def run_probe(name: str, fraction: float, cap_gib: float, extra: list[str], code: Path | None) -> dict:
    """One probe in its own capped process: peak RSS (GNU time), wall seconds and the probe's own report."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as stats:
        cap = ["prlimit", f"--as={int(cap_gib * 2**30)}"] if cap_gib else []
        command = [*cap, "/usr/bin/time", "-f", "%M", "-o", stats.name, sys.executable, __file__]
        command += ["--probe", name, "--fraction", str(fraction), *extra]
        start = time.perf_counter()
        env = {**os.environ, "PYTHONPATH": str(code or ROOT), "FULL_SHAPE_CODE": str(code or ROOT)}
        proc = subprocess.run(command, capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - start
        peak_gb = int(stats.read().split()[-1]) / 2**20
    if proc.returncode != 0:
        failed = "MemoryError" in proc.stderr or "Unable to allocate" in proc.stderr
        if not failed:
            raise RuntimeError(f"probe {name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return {"probe": name, "fraction": fraction, "peak_gb": peak_gb, "seconds": seconds, "capped": True}
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"probe": name, "fraction": fraction, "peak_gb": peak_gb, "seconds": seconds, "capped": False, **report}


def member_stats(scaling: list[Path]) -> dict[str, tuple]:
    """Per member: (nnz per test protein, its scores, where from) of the first scaling run folder that has its
    test.npz; DEFAULT_NNZ with uniform scores for a member none has."""
    from cafa_mlflow.go.labels import load_term_matrix

    stats = {name: (DEFAULT_NNZ[name], None, "guess") for name in MEMBERS}
    for name in MEMBERS:
        for folder in scaling:
            path = folder / "outputs" / "predictions" / name / "test.npz"
            if path.is_file():
                tm = load_term_matrix(path)
                stats[name] = (tm.matrix.nnz / tm.shape[0], tm.matrix.data.copy(), folder.name)
                break
    return stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--probe", choices=PROBES, help="run one probe in this process (what the runner calls)")
    ap.add_argument("--only", nargs="*", choices=PROBES, default=list(PROBES))
    ap.add_argument("--fraction", type=float, default=1.0, help="share of the 224,309 test proteins")
    ap.add_argument("--fallback", type=float, default=0.25, help="share rerun when a probe hits the cap")
    ap.add_argument("--cap", type=float, default=14.0, help="address-space cap per probe, GiB (0 = none)")
    ap.add_argument("--hits", type=int, default=50, help="synthetic DIAMOND hits per test protein")
    ap.add_argument("--k", type=int, default=10, help="knn neighbours")
    ap.add_argument("--scaling", type=Path, nargs="*", default=[], help="scaling run folders: members' nnz, scores")
    ap.add_argument("--code", type=Path, default=None, help="library to measure (default: this checkout)")
    ap.add_argument("--members", default="", help="JSON {member: test.npz} (what the runner passes to probes)")
    ap.add_argument("--label", default="", help="a name for this run in the JSON written under outputs/bench")
    args = ap.parse_args()
    if args.probe:
        report = {
            "vote": lambda: probe_vote(args.fraction, args.hits),
            "knn": lambda: probe_knn(args.fraction, args.k),
            "naive": lambda: probe_naive(args.fraction),
            "ensemble": lambda: probe_ensemble(args.fraction, json.loads(args.members or "{}"), args.label),
            "score": lambda: probe_score(args.fraction, args.label),
            "evaluate": lambda: probe_evaluate(args.label),
        }[args.probe]()
        print(json.dumps(report))
        return
    from kaggle_shape import KAGGLE_TEST, KAGGLE_TRAIN

    from cafa_mlflow.go.labels import load_term_matrix

    stats = member_stats(args.scaling)
    files = setup(KAGGLE_TRAIN, KAGGLE_TEST, stats, "ensemble" in args.only)
    labels = load_term_matrix(CACHE / "labels_all.npz")
    print(
        f"{labels.shape[0]} training proteins, {labels.shape[1]} carried terms, {labels.matrix.nnz / labels.shape[0]:.1f} per protein"
    )
    rows = []
    for name in args.only:
        if name == "evaluate":
            write_file(args.label)
        extra = ["--hits", str(args.hits), "--k", str(args.k), "--members", json.dumps(files), "--label", args.label]
        row = run_probe(name, args.fraction, args.cap, extra, args.code)
        if row["capped"] and args.fallback < args.fraction:
            part = run_probe(name, args.fallback, args.cap, extra, args.code)
            row.update(
                part_gb=part["peak_gb"], part_fraction=args.fallback, nnz_per_protein=part.get("nnz_per_protein")
            )
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| probe | rows | peak GiB | seconds | nnz/protein |\n|---|---|---|---|---|")
    for r in rows:
        peak = (
            f">{args.cap:.0f} (cap; {r['part_gb']:.2f} at {r['part_fraction']:.0%})"
            if r["capped"]
            else f"{r['peak_gb']:.2f}"
        )
        print(
            f"| {r['probe']} | {r.get('rows', '-')} | {peak} | {r['seconds']:.0f} | {r.get('nnz_per_protein') or 0:.0f} |"
        )
    out = ROOT / "outputs" / "bench" / f"full_shape_memory{'_' + args.label if args.label else ''}.json"
    assumed = {name: {"nnz_per_protein": round(n, 1), "from": source} for name, (n, _, source) in stats.items()}
    out.write_text(json.dumps({"members": assumed, "code": str(args.code or ROOT), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
