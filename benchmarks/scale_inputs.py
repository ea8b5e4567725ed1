"""Synthetic evaluation inputs of a given size for the evaluator benchmarks (CAFA3-sized, Kaggle-sized).

Truth: the bundled test annotations (4,215 proteins), renamed to proteins spread over the submission.
Submission: `n_proteins` proteins, each with up to k terms, k drawn from a log-normal clipped to [k_min, k_max]
(CAFA-6 shape: 50-1,500 terms, mean ~236; repeated draws are dropped, so a few % fewer lines); terms drawn
from every term the bundled
training annotations reach after propagation, weighted by sqrt(frequency) (so the closure U in use is
realistic: ~17k terms, not a few hundred), scores = noisy frequency, 3 decimals, sorted per protein,
highest first. Written with pyarrow's CSV writer (C++), in blocks of proteins.
"""

from __future__ import annotations

import lzma
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
BLOCK_PROTEINS = 20_000


def terms_per_protein(n_proteins: int, rng: np.random.Generator, k_min: int = 50, k_max: int = 1500) -> np.ndarray:
    """Log-normal (median 184, sigma 0.75) clipped to [k_min, k_max]: mean ~248 before repeats are dropped (~236 after), as CAFA-6's 53M / 224k."""
    return np.clip(np.rint(np.exp(rng.normal(np.log(184), 0.75, n_proteins))), k_min, k_max).astype(np.int64)


def make_inputs(folder: Path, n_proteins: int, k: int | None = None, seed: int = 0, ia: bool = True) -> dict:
    """Write go.obo (plain text), truth.tsv, ia.tsv and pred/submission.tsv into `folder`; k = fixed terms per
    protein (None = the CAFA-6 mix). Returns {"proteins", "lines", "truth_proteins"}."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pacsv

    sys.path.insert(0, str(ROOT))
    from cafa_mlflow.go.annotations import resolve_terms
    from cafa_mlflow.go.information_accretion import compute_ia
    from cafa_mlflow.go.labels import label_matrix
    from cafa_mlflow.go.ontology import load_obo
    from cafa_mlflow.io.ia import write_ia
    from cafa_mlflow.io.terms import read_terms

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "go.obo").write_bytes(lzma.open(SAMPLE / "go-basic.obo.xz").read())  # cafaeval reads plain text
    ontology = load_obo(folder / "go.obo")
    train = resolve_terms(read_terms(SAMPLE / "train" / "train_terms.tsv.xz"), ontology)
    labels = label_matrix(train, ontology, list(pd.unique(train["protein"])))
    if ia:
        write_ia(folder / "ia.tsv", compute_ia(labels, ontology, propagated=True))
    freq = np.asarray(labels.matrix.sum(axis=0)).ravel() / labels.shape[0]
    pool = np.flatnonzero(freq > 0)
    weight = np.sqrt(freq[pool])
    weight /= weight.sum()

    names = np.array([f"P{i:06d}" for i in range(n_proteins)], dtype=object)
    truth = read_terms(SAMPLE / "test" / "test_terms.tsv.xz")
    truth_ids = list(pd.unique(truth["protein"]))
    at = np.sort(rng.choice(n_proteins, min(len(truth_ids), n_proteins), replace=False))
    rename = dict(zip(truth_ids, names[at]))
    truth = truth[truth["protein"].isin(rename)].assign(protein=lambda t: t["protein"].map(rename))
    truth.rename(columns={"protein": "EntryID"}).to_csv(folder / "truth.tsv", sep="\t", index=False)

    counts = np.full(n_proteins, k) if k else terms_per_protein(n_proteins, rng)
    term_ids = pa.array(np.asarray(ontology.terms, dtype=object))
    score_text = pa.array([f"{q / 1000:.3f}".rstrip("0").rstrip(".") for q in range(1001)])
    (folder / "pred").mkdir(exist_ok=True)
    options = pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
    lines = 0
    with pacsv.CSVWriter(folder / "pred" / "submission.tsv", _schema(pa), write_options=options) as writer:
        for start in range(0, n_proteins, BLOCK_PROTEINS):
            block = counts[start : start + BLOCK_PROTEINS]
            rows = np.repeat(np.arange(start, start + len(block)), block)
            cols = rng.choice(pool, len(rows), p=weight)  # with replacement: repeats dropped below
            _, first = np.unique(rows * len(freq) + cols, return_index=True)
            rows, cols = rows[first], cols[first]
            q = np.clip(
                np.rint((freq[cols] * rng.uniform(0.3, 1.6, len(cols)) + rng.uniform(0, 0.1, len(cols))) * 1000),
                1,
                1000,
            )
            order = np.lexsort((-q, rows))
            rows, cols, q = rows[order], cols[order], q[order].astype(np.int64)
            table = pa.table(
                {
                    "p": pa.DictionaryArray.from_arrays(
                        pa.array(rows - start, pa.int32()), pa.array(names[start : start + len(block)])
                    ),
                    "t": pa.DictionaryArray.from_arrays(pa.array(cols, pa.int32()), term_ids),
                    "s": pa.DictionaryArray.from_arrays(pa.array(q, pa.int32()), score_text),
                }
            )
            writer.write_table(table.cast(_schema(pa)))
            lines += len(rows)
    return {"proteins": n_proteins, "lines": lines, "truth_proteins": int(truth["protein"].nunique())}


def _schema(pa):
    return pa.schema([("p", pa.string()), ("t", pa.string()), ("s", pa.string())])
