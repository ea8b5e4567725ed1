"""Data of Kaggle's CAFA-6 shape from real proteins: Swiss-Prot 2014 (Debian's metastudent-data: 513,726 proteins
with GO terms known to the bundled GO release, once the bundled test set's accessions and sequences are removed), written in Kaggle's file layout and headers.

    python benchmarks/kaggle_shape.py --train 82404 --out outputs/bench/kaggle_full

Split (time-like, by accession): UniProt assigned accessions in series, P first (1986-), then Q, O and, from
2007, A-N; ordered that way (then by accession within a series), the newest 224,309 proteins (Kaggle's test size)
form the test band and the 289,417 older ones the training band, so every test protein is a later entry than every
training protein (as far as accession order follows time). Test size = train size x 224,309 / 82,404 (Kaggle's
ratio) unless --test is given; each set is a seeded random draw from its band, and a smaller draw is a subset of a
larger one.

What is real: sequences, GO annotations (electronic and experimental together: metastudent-data has no evidence
codes), their density per protein. What is not: metastudent-data has no taxon, so every protein gets NCBI taxon
32644 ("unidentified") in `OX=`, the taxonomy TSV and the test headers; names are `<ACC>_UNKNOWN`.

Files (as Kaggle ships them): Train/train_sequences.fasta (`>sp|ACC|NAME ... OX=`), Train/train_terms.tsv
(`EntryID term aspect`, header), Train/train_taxonomy.tsv (no header), Train/go-basic.obo,
Test/testsuperset.fasta (`>ACC TAXON`), Test/testsuperset-taxon-list.tsv, IA.tsv (from the training terms, as the
product computes it); plus Test/test_terms.tsv, the held-out truth Kaggle keeps to itself (for `cafa evaluate`).
"""

from __future__ import annotations

import argparse
import lzma
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
METASTUDENT = Path("/usr/share/metastudent-data/dataset_201401")
POOL_CACHE = ROOT / "outputs" / "bench" / "metastudent_pool.parquet"
KAGGLE_TRAIN, KAGGLE_TEST = 82_404, 224_309
UNIDENTIFIED_TAXON = "32644"
ASPECT_LETTER = {"BPO": "P", "CCO": "C", "MFO": "F"}  # CAFA-6's train_terms.tsv writes the letter
SERIES = "PQO"  # the order UniProt opened its accession series in; A-N (2007 on) follow alphabetically


def load_pool() -> pd.DataFrame:
    """One row per protein: protein, sequence, terms (list of GO ids known to the bundled GO, aspect letters
    alongside); the bundled test accessions and sequences identical to them removed. Cached as parquet."""
    if POOL_CACHE.is_file():
        return pd.read_parquet(POOL_CACHE)
    from cafa_mlflow.go.ontology import load_obo
    from cafa_mlflow.io.fasta import load_fasta
    from cafa_mlflow.io.reference_formats import read_metastudent

    ref = read_metastudent(METASTUDENT)
    ontology = load_obo(ROOT / "data" / "sample" / "go-basic.obo.xz")
    test = load_fasta(ROOT / "data" / "sample" / "test" / "test_sequences.fasta.xz")
    banned_ids, banned_seqs = {r.id for r in test}, {r.sequence for r in test}
    table = ref.annotations[["protein", "term"]]
    table = table[table["term"].isin(ontology.index.keys())]
    table = table.assign(aspect=[ontology.aspect[ontology.index[t]] for t in table["term"]])
    grouped = table.groupby("protein", sort=True)
    pool = pd.DataFrame({"terms": grouped["term"].agg(list), "aspects": grouped["aspect"].agg(list)})
    pool["sequence"] = [ref.sequences[p] for p in pool.index]
    keep = ~pool.index.isin(banned_ids) & ~pool["sequence"].isin(banned_seqs)
    pool = pool[keep].rename_axis("protein").reset_index()
    POOL_CACHE.parent.mkdir(parents=True, exist_ok=True)
    pool.to_parquet(POOL_CACHE)
    return pool


def time_order(proteins: pd.Series) -> np.ndarray:
    """Positions of `proteins` from oldest to newest accession: series P, Q, O, then A-N; by accession within."""
    first = proteins.str[0]
    rank = first.map({c: i for i, c in enumerate(SERIES)}).fillna(first.map(ord) + len(SERIES))
    return np.lexsort((proteins.to_numpy(), rank.to_numpy()))


def draw(pool: pd.DataFrame, n_train: int, n_test: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded samples: test from the newest KAGGLE_TEST accessions, training from the older rest. A fixed
    permutation of each band is cut at n, so a smaller draw is a prefix (subset) of a larger one."""
    order = time_order(pool["protein"])
    train_band, test_band = pool.iloc[order[:-KAGGLE_TEST]], pool.iloc[order[-KAGGLE_TEST:]]
    if n_train > len(train_band) or n_test > len(test_band):
        raise SystemExit(f"at most {len(train_band)} training / {len(test_band)} test proteins in the pool")
    rng = np.random.default_rng(seed)
    train = train_band.iloc[rng.permutation(len(train_band))[:n_train]]
    test = test_band.iloc[rng.permutation(len(test_band))[:n_test]]
    return train, test


def _fasta(path: Path, headers: list[str], sequences: list[str]) -> None:
    with open(path, "w") as out:
        for header, seq in zip(headers, sequences):
            out.write(f">{header}\n")
            out.writelines(seq[i : i + 60] + "\n" for i in range(0, len(seq), 60))


def _terms(path: Path, frame: pd.DataFrame) -> None:
    long = frame[["protein", "terms", "aspects"]].explode(["terms", "aspects"])
    long.columns = ["EntryID", "term", "aspect"]
    long["aspect"] = long["aspect"].map(ASPECT_LETTER)
    long.to_csv(path, sep="\t", index=False)


def write_kaggle(train: pd.DataFrame, test: pd.DataFrame, out: Path) -> dict:
    """Kaggle's layout under `out`; returns the paths as params.yaml's data block."""
    from cafa_mlflow.go.annotations import resolve_terms
    from cafa_mlflow.go.information_accretion import compute_ia
    from cafa_mlflow.go.labels import label_matrix
    from cafa_mlflow.go.ontology import load_obo
    from cafa_mlflow.io.ia import write_ia
    from cafa_mlflow.io.terms import read_terms

    (out / "Train").mkdir(parents=True, exist_ok=True)
    (out / "Test").mkdir(parents=True, exist_ok=True)
    obo = out / "Train" / "go-basic.obo"
    obo.write_bytes(lzma.open(ROOT / "data" / "sample" / "go-basic.obo.xz").read())
    ids = train["protein"].tolist()
    _fasta(
        out / "Train" / "train_sequences.fasta",
        [f"sp|{p}|{p}_UNKNOWN Uncharacterized protein OS=unidentified OX={UNIDENTIFIED_TAXON} PE=1 SV=1" for p in ids],
        train["sequence"].tolist(),
    )
    _terms(out / "Train" / "train_terms.tsv", train)
    (out / "Train" / "train_taxonomy.tsv").write_text("".join(f"{p}\t{UNIDENTIFIED_TAXON}\n" for p in ids))
    _fasta(
        out / "Test" / "testsuperset.fasta",
        [f"{p} {UNIDENTIFIED_TAXON}" for p in test["protein"]],
        test["sequence"].tolist(),
    )
    (out / "Test" / "testsuperset-taxon-list.tsv").write_text(f"ID\tSpecies\n{UNIDENTIFIED_TAXON}\tunidentified\n")
    _terms(out / "Test" / "test_terms.tsv", test)
    ontology = load_obo(obo)
    annotations = resolve_terms(read_terms(out / "Train" / "train_terms.tsv"), ontology)
    write_ia(out / "IA.tsv", compute_ia(label_matrix(annotations, ontology, ids), ontology, propagated=True))
    return {
        "obo": str(obo),
        "train_fasta": str(out / "Train" / "train_sequences.fasta"),
        "train_terms": str(out / "Train" / "train_terms.tsv"),
        "train_taxonomy": str(out / "Train" / "train_taxonomy.tsv"),
        "test_fasta": str(out / "Test" / "testsuperset.fasta"),
        "test_terms": str(out / "Test" / "test_terms.tsv"),
        "ia": str(out / "IA.tsv"),
    }


def test_size(n_train: int) -> int:
    """Kaggle's test : train ratio (224,309 / 82,404 = 2.72)."""
    return round(n_train * KAGGLE_TEST / KAGGLE_TRAIN)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, default=KAGGLE_TRAIN)
    ap.add_argument("--test", type=int, default=None, help="default: train x Kaggle's test/train ratio")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    pool = load_pool()
    train, test = draw(pool, args.train, args.test or test_size(args.train), args.seed)
    data = write_kaggle(train, test, args.out)
    rows = sum(len(t) for t in train["terms"])
    print(f"{args.out}: {len(train)} training proteins ({rows} annotation rows), {len(test)} test proteins")
    print("\n".join(f"  data.{k}: {v}" for k, v in data.items()))


if __name__ == "__main__":
    main()
