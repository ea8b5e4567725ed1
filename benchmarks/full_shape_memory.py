"""Peak memory of the library's in-memory steps at Kaggle's full shape (issue 22): 82,404 training proteins,
224,309 test proteins, each step alone in its own process under GNU time (peak RSS).

    nice -n 10 python benchmarks/full_shape_memory.py --scaling /work/main/outputs/bench/scaling/4000

What is real: the drawn proteins (benchmarks/kaggle_shape.py: Swiss-Prot 2014, time-like split) and their GO
annotations, propagated as `cafa prepare` does (resolve_terms + label_matrix; vocabulary = prepare.min_count 5).
What is synthetic (computing the real thing would take hours): the neighbours (every test protein gets
`--hits` DIAMOND-like hits drawn at random among the training proteins, bitscores 30..1000: a worst case for the
vote, as random neighbours share fewer terms than homologs) and the members' test matrices of the ensemble probe
(per protein, the nnz per protein that the lead's scaling run measured for that member (`--scaling`), columns drawn
in proportion to the training frequency of the member's terms, scores uniform in (0, 1]).

Probes (each in its own process, `prlimit --as` caps it at --cap GiB so that a step that would exceed the machine
fails with MemoryError instead of taking it down; a capped probe is rerun on --fallback of the test proteins and
its peak extrapolated linearly):
  vote      homology's test prediction: hits_to_scores (hits table -> weights -> transfer.vote) for 224k queries
  naive     the naive prior for 224k proteins (NaivePredictor.predict)
  knn       knn's vote for 224k queries, blocks of 512 as knn_scores (k=10 random neighbours; no similarity search)
  ensemble  the ensemble step's test path: load 5 member test.npz, blend `combine` + finalize, save test.npz
  score     evaluation: Scorer over the 224k test proteins' real truth, scoring the ensemble probe's output
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
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
CACHE = ROOT / "outputs" / "bench" / "full_shape"
POOL = Path("/work/main/outputs/bench/metastudent_pool.parquet")
OBO = ROOT / "data" / "sample" / "go-basic.obo.xz"
PROBES = ("vote", "naive", "knn", "ensemble", "score")
MEMBERS = ("naive", "homology", "knn", "neural", "reference")
# nnz per test protein of a member the scaling run (--scaling) lacks: a guess, reported with the results
DEFAULT_NNZ = {"naive": 670, "homology": 150, "knn": 400, "neural": 400, "reference": 600}
SEED = 0


def ontology():
    from cafa_mlflow.go.ontology import load_obo

    return load_obo(OBO)


def setup(n_train: int, n_test: int, nnz: dict[str, float]) -> None:
    """Real labels of the drawn proteins, the test truth, and synthetic member test matrices (cached)."""
    from kaggle_shape import draw

    from cafa_mlflow.go.annotations import resolve_terms
    from cafa_mlflow.go.ia import compute_ia
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
    for name in MEMBERS:
        path = CACHE / f"member_{name}.npz"
        if not path.is_file():
            save_term_matrix(path, synthetic_member(name, nnz[name]))


def synthetic_member(name: str, per_protein: float):
    """224k test rows with `per_protein` scores each over the member's terms (naive: its real prior)."""
    from cafa_mlflow.go.labels import TermMatrix, load_term_matrix, max_csr
    from cafa_mlflow.predictors.base import TrainSet
    from cafa_mlflow.predictors.naive import NaivePredictor

    truth = load_term_matrix(CACHE / "truth.npz")
    ids = truth.proteins
    vocab_members = ("naive", "neural")
    labels = load_term_matrix(CACHE / ("labels_vocab.npz" if name in vocab_members else "labels_all.npz"))
    if name == "naive":
        return NaivePredictor(ontology(), "aspect", 0.01).fit(TrainSet.from_labels(labels)).predict(ids)
    rng = np.random.default_rng(SEED + MEMBERS.index(name))
    freq = np.asarray(labels.matrix.getnnz(axis=0), dtype=np.float64)
    k = int(round(per_protein * 1.15))  # draws with replacement: repeats merge, about per_protein stay
    blocks = []
    for start in range(0, len(ids), 8192):
        n = min(8192, len(ids) - start)
        r = np.repeat(np.arange(n), k)
        c = rng.choice(len(freq), size=n * k, p=freq / freq.sum())
        vals = rng.uniform(0.01, 1.0, len(r)).astype(np.float32)
        blocks.append(max_csr(r, c, vals, (n, len(labels.terms))))
    return TermMatrix(ids, labels.terms, sp.vstack(blocks, format="csr"))


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


def probe_ensemble(fraction: float) -> dict:
    """As workflows/ensemble.fit_ensemble's test path: every member's test.npz loaded, combined, finalized, saved."""
    from types import SimpleNamespace

    from cafa_mlflow.go.labels import load_term_matrix, save_term_matrix
    from cafa_mlflow.predictors.combine.blend import EnsemblePredictor
    from cafa_mlflow.predictors.naive import NaivePredictor

    onto = ontology()
    preds = {name: load_term_matrix(CACHE / f"member_{name}.npz") for name in MEMBERS}
    ids = test_ids(fraction)
    ensemble = EnsemblePredictor({name: NaivePredictor() for name in MEMBERS}, onto)
    ensemble.weights = {a: {name: 0.2 for name in MEMBERS} for a in ("BPO", "CCO", "MFO")}
    terms = list(dict.fromkeys(t for tm in preds.values() for t in tm.terms))
    ensemble.term_aspect = dict(zip(terms, onto.aspect[[onto.index[t] for t in terms]].tolist()))
    submission = SimpleNamespace(max_terms=1500, sig=3, min_score=0.001)
    if hasattr(ensemble, "finalized"):  # the blocked path (issue 22)
        final = ensemble.finalized(preds, ids, onto, submission)
    else:
        from cafa_mlflow.go.finalize import finalize

        final = finalize(ensemble.combine(preds, ids), onto, submission)
    out = CACHE / ("ensemble_test.npz" if fraction == 1 else "ensemble_test_part.npz")
    save_term_matrix(out, final)
    member_nnz = {name: round(tm.matrix.nnz / tm.shape[0], 1) for name, tm in preds.items()}
    return {"rows": len(ids), "nnz_per_protein": final.matrix.nnz / len(ids), "members": member_nnz}


def probe_score(fraction: float) -> dict:
    from cafa_mlflow.evaluation.scorer import Scorer
    from cafa_mlflow.go.labels import load_term_matrix

    onto = ontology()
    ids = test_ids(fraction)
    truth = load_term_matrix(CACHE / "truth.npz").reindex(proteins=ids)
    pred = load_term_matrix(CACHE / "ensemble_test.npz")
    ia = pd.read_json(CACHE / "ia.json", typ="series").to_dict()
    result = Scorer(onto, truth, ia, 0.01)(pred)
    return {"rows": len(ids), "nnz_per_protein": pred.matrix.nnz / pred.shape[0], "f_w": result["mean_f_w"]}


def run_probe(name: str, fraction: float, cap_gib: float, extra: list[str]) -> dict:
    """One probe in its own capped process: peak RSS (GNU time), wall seconds and the probe's own report."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as stats:
        cap = ["prlimit", f"--as={int(cap_gib * 2**30)}"] if cap_gib else []
        command = [*cap, "/usr/bin/time", "-f", "%M", "-o", stats.name, sys.executable, __file__]
        command += ["--probe", name, "--fraction", str(fraction), *extra]
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        seconds = time.perf_counter() - start
        peak_gb = int(stats.read().split()[-1]) / 2**20
    if proc.returncode != 0:
        failed = "MemoryError" in proc.stderr or "Unable to allocate" in proc.stderr
        if not failed:
            raise RuntimeError(f"probe {name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return {"probe": name, "fraction": fraction, "peak_gb": peak_gb, "seconds": seconds, "capped": True}
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"probe": name, "fraction": fraction, "peak_gb": peak_gb, "seconds": seconds, "capped": False, **report}


def member_nnz(scaling: Path | None) -> dict[str, float]:
    """nnz per test protein of each member in a scaling run's outputs (DEFAULT_NNZ for the missing ones)."""
    from cafa_mlflow.go.labels import load_term_matrix

    nnz = dict(DEFAULT_NNZ)
    for name in MEMBERS:
        path = None if scaling is None else scaling / "outputs" / "predictions" / name / "test.npz"
        if path is not None and path.is_file():
            tm = load_term_matrix(path)
            nnz[name] = tm.matrix.nnz / tm.shape[0]
    return nnz


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--probe", choices=PROBES, help="run one probe in this process (what the runner calls)")
    ap.add_argument("--only", nargs="*", choices=PROBES, default=list(PROBES))
    ap.add_argument("--fraction", type=float, default=1.0, help="share of the 224,309 test proteins")
    ap.add_argument("--fallback", type=float, default=0.25, help="share rerun when a probe hits the cap")
    ap.add_argument("--cap", type=float, default=14.0, help="address-space cap per probe, GiB (0 = none)")
    ap.add_argument("--hits", type=int, default=50, help="synthetic DIAMOND hits per test protein")
    ap.add_argument("--k", type=int, default=10, help="knn neighbours")
    ap.add_argument("--scaling", type=Path, default=None, help="a scaling run folder: members' nnz per protein")
    ap.add_argument("--label", default="", help="a name for this run in the JSON written under outputs/bench")
    args = ap.parse_args()
    if args.probe:
        report = {
            "vote": lambda: probe_vote(args.fraction, args.hits),
            "knn": lambda: probe_knn(args.fraction, args.k),
            "naive": lambda: probe_naive(args.fraction),
            "ensemble": lambda: probe_ensemble(args.fraction),
            "score": lambda: probe_score(args.fraction),
        }[args.probe]()
        print(json.dumps(report))
        return
    from kaggle_shape import KAGGLE_TEST, KAGGLE_TRAIN

    from cafa_mlflow.go.labels import load_term_matrix

    nnz = member_nnz(args.scaling)
    setup(KAGGLE_TRAIN, KAGGLE_TEST, nnz)
    labels = load_term_matrix(CACHE / "labels_all.npz")
    print(
        f"{labels.shape[0]} training proteins, {labels.shape[1]} carried terms, {labels.matrix.nnz / labels.shape[0]:.1f} per protein"
    )
    rows = []
    for name in args.only:
        extra = ["--hits", str(args.hits), "--k", str(args.k)]
        row = run_probe(name, args.fraction, args.cap, extra)
        if row["capped"] and args.fallback < args.fraction:
            part = run_probe(name, args.fallback, args.cap, extra)
            row.update(
                part_gb=part["peak_gb"], part_fraction=args.fallback, nnz_per_protein=part.get("nnz_per_protein")
            )
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| probe | rows | peak GB | seconds | nnz/protein |\n|---|---|---|---|---|")
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
    out.write_text(json.dumps({"nnz_assumed": nnz, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
