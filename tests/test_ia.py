"""Information accretion on a hand-made example with known values; the `cafa ia` command."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cafa_mlflow.go.information_accretion import compute_ia, term_counts
from cafa_mlflow.go.labels import label_matrix
from cafa_mlflow.go.ontology import load_obo
from cafa_mlflow.io.ia import read_ia
from pipelines.cli import main as cafa
from tests.cafa_fixtures import OBO, TERMS_TSV, snapshot, write

# propagated counts: 1:4, 2:3, 3:3, 4:2 (P1, P4 = proteins with both parents 2 and 3), 5:1, 10:2, 11:1
EXPECTED = {
    "GO:0000001": 0.0,
    "GO:0000002": -math.log2(3 / 4),
    "GO:0000003": -math.log2(3 / 4),
    "GO:0000004": 0.0,
    "GO:0000005": 1.0,
    "GO:0000010": 0.0,
    "GO:0000011": 1.0,
    "GO:0000020": 0.0,
    "GO:0000021": 0.0,
    "X:1": 0.0,
    "X:2": 0.0,
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("ia")
    return write(root / "go.obo", OBO), write(root / "terms.tsv", TERMS_TSV)


def _annotations():
    rows = [line.split("\t") for line in TERMS_TSV.strip().splitlines()[1:]]
    frame = pd.DataFrame(rows, columns=["protein", "term", "aspect"])
    return frame.assign(term=frame["term"].replace({"GO:0000040": "GO:0000004"}))


def test_counts_and_ia_known_values(files):
    onto = load_obo(files[0])
    labels = label_matrix(_annotations(), onto, [f"P{i}" for i in range(1, 7)])
    with_term, with_parents = term_counts(labels.matrix, onto, block_rows=2)  # blocks must add up
    assert with_term.tolist() == [4, 3, 3, 2, 1, 2, 1, 0, 0, 0, 0]
    assert with_parents.tolist() == [0, 4, 4, 2, 2, 0, 2, 0, 0, 0, 0]  # roots have no parents
    ia = compute_ia(labels, onto)
    assert ia.index.tolist() == onto.terms
    np.testing.assert_allclose(ia.to_numpy(), [EXPECTED[t] for t in onto.terms], rtol=0, atol=1e-12)
    # propagated input gives the same answer (propagation is idempotent)
    np.testing.assert_allclose(compute_ia(labels.matrix, onto).to_numpy(), ia.to_numpy())


def test_cafa_ia_cli(files, tmp_path, capsys):
    obo, terms = files
    out = tmp_path / "IA.tsv"
    assert cafa(["ia", "--obo", str(obo), "--terms", str(terms), "--out", str(out)]) == 0
    assert "11 terms, 6 proteins, 4 terms with IA > 0" in capsys.readouterr().out
    ia = read_ia(out)
    assert list(ia) == list(EXPECTED)
    for term, value in EXPECTED.items():
        assert ia[term] == pytest.approx(value, abs=1e-9)
    assert not out.read_text().endswith("\n") and out.read_text().count("\n") == 10


def test_cafa_ia_cli_bad_terms_writes_nothing(files, tmp_path, capsys):
    obo, _ = files
    bad = write(tmp_path / "in" / "terms.tsv", "EntryID\tterm\taspect\nP1\tGO:0000005\tQ\n")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert cafa(["ia", "--obo", str(obo), "--terms", str(bad), "--out", str(out_dir / "IA.tsv")]) == 2
    assert "terms.tsv:2: aspect 'Q' is not one of C, F, P" in capsys.readouterr().err
    assert snapshot(out_dir) == {}
