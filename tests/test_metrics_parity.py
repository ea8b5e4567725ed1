"""Parity with the reference CAFA-evaluator (cafaeval 1.3.0, prop='max', norm='cafa') on real data.

Predictions: a noisy term-frequency predictor (bundled training annotations) for a few hundred bundled
test proteins, plus each protein's own (unpropagated) truth terms with random scores, written as a
submission with 2-, 3- and 5-decimal scores (many exactly on the threshold grid), alt_ids, unknown terms,
Text lines and proteins outside the truth. cafaeval reads a sub-ontology of the real GO (the ancestor
closure of every term in play, same stanzas) so that it runs in seconds; we use the full GO file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from cafa_mlflow.evaluation.scorer import Scorer, read_truth
from cafa_mlflow.go.annotations import resolve_terms
from cafa_mlflow.go.information_accretion import compute_ia
from cafa_mlflow.go.labels import label_matrix, read_submission
from cafa_mlflow.go.ontology import load_obo
from cafa_mlflow.io.ia import read_ia, write_ia
from cafa_mlflow.io.terms import read_terms
from cafa_mlflow.io.text import open_text

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
N_PROTEINS, N_OUTSIDE, N_FREQUENT, N_PER_PROTEIN = 300, 20, 600, 120
NAMESPACE = {"biological_process": "BPO", "cellular_component": "CCO", "molecular_function": "MFO"}
BEST = {  # our key -> (cafaeval best table, its column)
    "f": ("f", "f"),
    "tau": ("f", "tau"),
    "pr": ("f", "pr"),
    "rc": ("f", "rc"),
    "cov": ("f", "cov"),
    "cov_max": ("f", "cov_max"),
    "f_w": ("f_w", "f_w"),
    "tau_w": ("f_w", "tau"),
    "pr_w": ("f_w", "pr_w"),
    "rc_w": ("f_w", "rc_w"),
    "cov_w": ("f_w", "cov_w"),
    "cov_max_w": ("f_w", "cov_max"),
    "s": ("s", "s"),
    "tau_s": ("s", "tau"),
    "ru": ("s", "ru"),
    "mi": ("s", "mi"),
    "f_micro": ("f_micro", "f_micro"),
    "tau_micro": ("f_micro", "tau"),
    "f_micro_w": ("f_micro_w", "f_micro_w"),
    "tau_micro_w": ("f_micro_w", "tau"),
}
CURVES = ("n", "tp", "fp", "fn", "pr", "rc", "cov", "mi", "ru", "f", "s", "pr_micro", "rc_micro", "f_micro")


def write_sub_obo(source: Path, keep: set[str], out: Path) -> None:
    """The header and the [Term] stanzas of `keep`, verbatim."""
    text = open_text(source).read()
    blocks = text.split("\n[")
    kept = [blocks[0]] + [
        b for b in blocks[1:] if b.startswith("Term]") and b.split("\nid: ", 1)[1].split("\n", 1)[0] in keep
    ]
    out.write_text("\n[".join(kept) + "\n")


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("parity")
    rng = np.random.default_rng(7)
    ontology = load_obo(SAMPLE / "go-basic.obo.xz")
    train = resolve_terms(read_terms(SAMPLE / "train" / "train_terms.tsv.xz"), ontology)
    labels = label_matrix(train, ontology, list(pd.unique(train["protein"])))
    ia = compute_ia(labels, ontology)
    ia = ia[rng.random(len(ia)) > 0.1]  # some terms missing from the IA file: weight 0 for cafaeval
    write_ia(root / "ia.tsv", ia)
    freq = np.asarray(labels.matrix.sum(axis=0)).ravel() / labels.shape[0]

    truth_raw = read_terms(SAMPLE / "test" / "test_terms.tsv.xz")
    proteins = list(pd.unique(truth_raw["protein"]))
    chosen = [proteins[i] for i in sorted(rng.choice(len(proteins), N_PROTEINS, replace=False))]
    truth_raw = truth_raw[truth_raw["protein"].isin(set(chosen))]
    truth_raw.rename(columns={"protein": "EntryID"}).to_csv(root / "truth.tsv", sep="\t", index=False)

    frequent = np.argsort(-freq)[:N_FREQUENT]
    alt_of = {primary: alt for alt, primary in ontology.alt_ids.items()}
    lines = []
    outside = [f"NOT_IN_TRUTH_{i}" for i in range(N_OUTSIDE)]
    for protein in chosen + outside:
        cols = rng.choice(frequent, N_PER_PROTEIN, replace=False)
        scores = np.clip(freq[cols] * rng.uniform(0.3, 1.6, len(cols)) + rng.uniform(0, 0.15, len(cols)), 0.001, 1)
        terms = [ontology.terms[j] for j in cols]
        own = truth_raw.loc[truth_raw["protein"] == protein, "term"].tolist()
        own = [t for t in own if rng.random() < 0.3]  # a few deep true terms, so that some scores are hits
        terms += own
        scores = np.r_[scores, rng.uniform(0.01, 0.6, len(own))]
        for term, score in zip(terms, scores):
            u = rng.random()
            text = f"{round(score, 2):.2f}" if u < 0.4 else (f"{score:.5f}" if u < 0.5 else f"{round(score, 3):g}")
            if term in alt_of and rng.random() < 0.5:
                term = alt_of[term]
            if float(text) > 0:
                lines.append(f"{protein}\t{term}\t{text}")
        lines.append(f"{protein}\tGO:0000000\t0.5")  # unknown id
        lines.append(f"{protein}\tText\t0.9\ta free-text line")
    (root / "pred").mkdir()
    (root / "pred" / "submission.tsv").write_text("\n".join(lines) + "\n")

    used = set(truth_raw["term"]) | {t.split("\t")[1] for t in lines}
    cols = [ontology.index[p] for p in (ontology.resolve(t) for t in used) if p]
    closure = {ontology.terms[j] for j in np.unique(ontology.ancestors[cols].indices)}
    write_sub_obo(SAMPLE / "go-basic.obo.xz", closure, root / "sub.obo")

    from cafaeval.evaluation import cafa_eval

    df, best = cafa_eval(
        str(root / "sub.obo"),
        str(root / "pred"),
        str(root / "truth.tsv"),
        ia=str(root / "ia.tsv"),
        prop="max",
        norm="cafa",
        th_step=0.01,
    )
    scorer = Scorer(ontology, read_truth(root / "truth.tsv", ontology), read_ia(root / "ia.tsv"), th_step=0.01)
    pred = read_submission(root / "pred" / "submission.tsv")
    return {"df": df, "best": best, "result": scorer(pred), "curves": scorer.curves(pred), "ontology": ontology}


@pytest.mark.parametrize("aspect", ["BPO", "CCO", "MFO"])
def test_best_values_match_cafaeval(case, aspect):
    ns = {v: k for k, v in NAMESPACE.items()}[aspect]
    ours = case["result"][aspect]
    for key, (table, column) in BEST.items():
        ref = case["best"][table].reset_index().set_index("ns").loc[ns, column]
        assert ours[key] == pytest.approx(float(ref), abs=1e-6), key
    assert ours["n"] > 50 and 0 < ours["f_w"] < ours["f"] < 1  # a real, non-degenerate case


@pytest.mark.parametrize("aspect", ["BPO", "CCO", "MFO"])
def test_every_threshold_matches_cafaeval(case, aspect):
    ns = {v: k for k, v in NAMESPACE.items()}[aspect]
    ref = case["df"].xs(ns, level="ns").reset_index("tau")
    curves, curves_w = case["curves"][aspect]
    k = np.rint(ref["tau"].to_numpy() / 0.01).astype(int) - 1  # cafaeval kept thresholds with coverage > 0
    assert len(k) > 20 and np.count_nonzero(curves["cov"]) == len(k)
    for name in CURVES:
        np.testing.assert_allclose(curves[name][k], ref[name].to_numpy(), rtol=0, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(curves_w[name][k], ref[f"{name}_w"].to_numpy(), rtol=0, atol=1e-6, err_msg=name)
    assert ref["s_w"].min() == pytest.approx(case["result"][aspect]["s_w"], abs=1e-6)


def test_mean_weighted_fmax(case):
    best = case["best"]["f_w"].reset_index().set_index("ns")["f_w"]
    assert case["result"]["mean_f_w"] == pytest.approx(best.mean(), abs=1e-6)


def expand_to_ancestors_max(ontology, scores: sp.csr_matrix) -> np.ndarray:
    """Reference max-propagation, the direct way: every score goes to each of its ancestors, max wins."""
    anc = ontology.ancestors
    out = np.zeros(scores.shape, dtype=np.float32)
    rows = np.repeat(np.arange(scores.shape[0]), np.diff(scores.indptr))
    for r, c, v in zip(rows, scores.indices, scores.data):
        up = anc.indices[anc.indptr[c] : anc.indptr[c + 1]]
        out[r, up] = np.maximum(out[r, up], v)
    return out


def test_level_propagation_equals_expanding_to_ancestors(case):
    ontology = case["ontology"]
    rng = np.random.default_rng(3)
    rows, cols = rng.integers(0, 60, 4000), rng.integers(0, len(ontology), 4000)
    rows, cols = np.r_[rows, rows[:300]], np.r_[cols, cols[:300]]  # 300 repeated cells: each keeps its max
    vals = rng.random(4300).astype(np.float32)
    vals[:50] = 0  # stored zeros are no prediction
    order = np.argsort(rows, kind="stable")
    scores = sp.csr_matrix(
        (vals[order], cols[order], np.searchsorted(rows[order], np.arange(61))), shape=(60, len(ontology))
    )
    assert not scores.has_canonical_format
    expected = expand_to_ancestors_max(ontology, scores)
    for block_rows in (4096, 7):
        got = ontology.propagate_max(scores, block_rows=block_rows)
        assert got.has_canonical_format and got.dtype == np.float32
        assert got.nnz == np.count_nonzero(expected) > 4000
        np.testing.assert_array_equal(got.toarray(), expected)
