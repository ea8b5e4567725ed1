"""OBO reader and propagation on a hand-made DAG with known answers; the real go-basic's size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from cafa_mlflow.go.ontology import load_obo
from tests.cafa_fixtures import BP, OBO, assert_bad_file, write

SAMPLE_OBO = Path(__file__).resolve().parent.parent / "data" / "sample" / "go-basic.obo.xz"


@pytest.fixture(scope="module")
def onto(tmp_path_factory):
    return load_obo(write(tmp_path_factory.mktemp("obo") / "go.obo.gz", OBO))


def test_terms_aspects_alt_ids_obsolete(onto):
    assert onto.terms == [*BP, "GO:0000010", "GO:0000011", "GO:0000020", "GO:0000021", "X:1", "X:2"]
    assert onto.aspect.tolist() == ["BPO"] * 5 + ["CCO"] * 2 + ["MFO"] * 2 + ["animal"] * 2
    assert onto.aspects == ["BPO", "CCO", "MFO", "animal"]
    assert onto.resolve("GO:0000040") == "GO:0000004"  # alt_id
    assert onto.resolve("GO:0000004") == "GO:0000004"
    assert onto.resolve("GO:0000006") is None  # obsolete
    assert onto.resolve("GO:1234567") is None
    assert onto.obsolete == frozenset({"GO:0000006"})
    assert onto.names[3] == "c"
    assert {a: onto.roots(a) for a in onto.aspects} == {
        "BPO": ["GO:0000001"],
        "CCO": ["GO:0000010"],
        "MFO": ["GO:0000020"],
        "animal": ["X:1"],
    }


def test_ancestors_is_a_and_part_of_within_namespace(onto):
    assert onto.ancestors_of("GO:0000001") == ["GO:0000001"]
    assert onto.ancestors_of("GO:0000004") == ["GO:0000001", "GO:0000002", "GO:0000003", "GO:0000004"]
    # regulates is not followed, but 5 reaches 3 through 4's part_of
    assert onto.ancestors_of("GO:0000005") == BP
    assert onto.ancestors_of("GO:0000011") == ["GO:0000010", "GO:0000011"]  # is_a to the BP root dropped
    assert onto.ancestors_of("X:2") == ["X:1", "X:2"]
    assert onto.ancestors.shape == (11, 11) and onto.ancestors.nnz == 11 + 1 + 1 + 3 + 4 + 1 + 1 + 1


def test_propagate(onto):
    i = onto.index
    cols = [i["GO:0000004"], i["GO:0000002"], i["GO:0000021"], i["X:2"]]
    labels = sp.csr_matrix((np.array([1, 1, 1, 0.0]), cols, [0, 1, 3, 4]), shape=(3, len(onto)))
    assert labels.nnz == 4  # row 2 holds a stored zero, which is no label
    out = onto.propagate(labels)
    got = [sorted(onto.terms[j] for j in out[r].indices) for r in range(3)]
    assert got == [
        ["GO:0000001", "GO:0000002", "GO:0000003", "GO:0000004"],
        ["GO:0000001", "GO:0000002", "GO:0000020", "GO:0000021"],
        [],
    ]
    assert out.dtype == np.float32 and set(out.data) == {1.0}


def test_propagate_max(onto):
    i = onto.index
    dense = np.zeros((2, len(onto)), np.float32)
    dense[0, i["GO:0000005"]] = 0.3
    dense[0, i["GO:0000002"]] = 0.7
    dense[0, i["GO:0000003"]] = 0.1
    dense[1, i["GO:0000004"]] = 0.4
    dense[1, i["X:2"]] = 0.2
    out = onto.propagate_max(sp.csr_matrix(dense), block_rows=1).toarray()
    expect = np.zeros_like(dense)
    for term, score in {
        "GO:0000005": 0.3,
        "GO:0000004": 0.3,
        "GO:0000003": 0.3,
        "GO:0000002": 0.7,
        "GO:0000001": 0.7,
    }.items():
        expect[0, i[term]] = score
    for term, score in {
        "GO:0000004": 0.4,
        "GO:0000003": 0.4,
        "GO:0000002": 0.4,
        "GO:0000001": 0.4,
        "X:2": 0.2,
        "X:1": 0.2,
    }.items():
        expect[1, i[term]] = score
    np.testing.assert_array_equal(out, expect)
    assert onto.propagate_max(sp.csr_matrix((0, len(onto)))).shape == (0, len(onto))


@pytest.mark.parametrize(
    "text,message",
    [
        ("format-version: 1.2\n\n[Typedef]\nid: part_of\n", r"bad.obo: no live \[Term\] stanza"),
        ("[Term]\nname: no id\nnamespace: biological_process\n", r"bad.obo:1: \[Term\] stanza without an 'id:'"),
    ],
)
def test_bad_obo(tmp_path, text, message):
    assert_bad_file(tmp_path, load_obo, "bad.obo", text, message, "obo")


def test_real_go_basic():
    onto = load_obo(SAMPLE_OBO)
    assert len(onto) == 43_789  # 47,261 stanzas less 3,472 obsolete
    assert len(onto.obsolete) == 3_472
    assert {a: onto.roots(a) for a in ("BPO", "CCO", "MFO")} == {
        "BPO": ["GO:0008150"],
        "CCO": ["GO:0005575"],
        "MFO": ["GO:0003674"],
    }
    # GO:0005515 protein binding -> binding -> molecular_function
    assert onto.ancestors_of("GO:0005515") == ["GO:0003674", "GO:0005488", "GO:0005515"]
