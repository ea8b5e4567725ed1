"""Readers of train_terms.tsv, IA.tsv and train_taxonomy.tsv: Kaggle's layouts, unknown terms, errors."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from cafa_mlflow.errors import InputError
from cafa_mlflow.go.annotations import resolve_terms
from cafa_mlflow.go.ontology import load_obo
from cafa_mlflow.io.ia import read_ia, write_ia
from cafa_mlflow.io.taxonomy import read_taxonomy
from cafa_mlflow.io.terms import read_terms
from tests.cafa_fixtures import OBO, assert_bad_file, assert_prepare_writes_nothing, snapshot, write


@pytest.fixture(scope="module")
def onto(tmp_path_factory):
    return load_obo(write(tmp_path_factory.mktemp("obo") / "go.obo", OBO))


def test_kaggle_terms_with_header(tmp_path):
    path = write(
        tmp_path / "train_terms.tsv.xz", "EntryID\tterm\taspect\nA\tGO:0000002\tP\nA\tGO:0000011\tC\nB\tGO:0000021\tF\n"
    )
    frame = read_terms(path)
    assert frame.to_dict("list") == {
        "protein": ["A", "A", "B"],
        "term": ["GO:0000002", "GO:0000011", "GO:0000021"],
        "aspect": ["P", "C", "F"],
    }


def test_terms_without_header_or_aspect(tmp_path):
    frame = read_terms(write(tmp_path / "t.tsv", "A\tGO:0000002\nB\tGO:0000003\tBPO\n"))
    assert frame[["protein", "term"]].to_dict("list") == {"protein": ["A", "B"], "term": ["GO:0000002", "GO:0000003"]}
    assert frame["aspect"].isna().tolist() == [True, False] and frame["aspect"].iloc[1] == "P"


def test_unknown_terms_reported_once_then_dropped(onto, caplog):
    ann = pd.DataFrame(
        {
            "protein": ["A", "A", "B", "C", "C", "D"],
            "term": ["GO:0000002", "GO:9999999", "GO:9999999", "GO:0000006", "GO:0000040", "GO:0000040"],
            "aspect": ["P"] * 6,
        }
    )
    with caplog.at_level(logging.WARNING):
        out = resolve_terms(ann, onto, source="train_terms.tsv")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["train_terms.tsv: 2 unknown or obsolete term ids (3 rows) dropped, e.g. GO:9999999, GO:0000006"]
    assert out.to_dict("list") == {
        "protein": ["A", "C", "D"],
        "term": ["GO:0000002", "GO:0000004", "GO:0000004"],
        "aspect": ["P", "P", "P"],
    }


@pytest.mark.parametrize(
    "text,line,message",
    [
        ("EntryID\tterm\taspect\nA\n", 2, "expected 'EntryID<TAB>term<TAB>aspect'"),
        ("A\tGO:0000002\tP\nB\tGO:0000003\tX\n", 2, "aspect 'X' is not one of C, F, P"),
        ("A\tGO:0000002\tP\nB\t12345\tP\n", 2, "'12345' is not an ontology id"),
    ],
)
def test_bad_terms(tmp_path, text, line, message):
    assert_bad_file(tmp_path, read_terms, "bad.tsv", text, rf"bad.tsv:{line}: .*{message}", "train_terms")
    with pytest.raises(InputError, match=r"empty.tsv: no annotations found"):
        read_terms(write(tmp_path / "empty.tsv", "EntryID\tterm\taspect\n"))


def test_ia_read_write_round_trip(tmp_path):
    ia = read_ia(write(tmp_path / "IA.tsv", "GO:0000001\t0\nGO:0000002\t0.415037\n\nGO:0000005\t1.5\n"))
    assert ia == {"GO:0000001": 0.0, "GO:0000002": 0.415037, "GO:0000005": 1.5}
    write_ia(tmp_path / "out.tsv", pd.Series(ia))
    text = (tmp_path / "out.tsv").read_text()
    assert text == "GO:0000001\t0\nGO:0000002\t0.415037\nGO:0000005\t1.5"  # no header, no trailing newline
    assert read_ia(tmp_path / "out.tsv") == ia


@pytest.mark.parametrize(
    "text,line",
    [
        ("GO:0000001\t0\nGO:0000002\tabc\n", 2),
        ("GO:0000001\t-1\n", 1),
        ("GO:0000001\t0\t7\n", 1),
        ("GO:0000001\tnan\n", 1),
        ("term\tia\nGO:0000001\t0\n", 1),  # IA.tsv has no header
    ],
)
def test_bad_ia_names_line_and_writes_nothing(tmp_path, text, line):
    src = write(tmp_path / "in" / "IA.tsv", text)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InputError, match=rf"IA.tsv:{line}: expected 'GO:id<TAB>non-negative number'"):
        write_ia(out / "copy.tsv", read_ia(src))
    assert snapshot(out) == {}
    assert_prepare_writes_nothing(tmp_path, rf"IA.tsv:{line}: expected", ia=src)


def test_taxonomy(tmp_path):
    tax = read_taxonomy(write(tmp_path / "train_taxonomy.tsv", "A0A0C5B5G6\t9606\nP12345\t10090\n"))
    assert tax.to_dict() == {"A0A0C5B5G6": "9606", "P12345": "10090"}


@pytest.mark.parametrize(
    "text,message",
    [
        ("EntryID\ttaxonomyID\nA\t9606\n", r"tax.tsv:1: expected 'EntryID<TAB>taxonID'"),
        ("A\t9606\nB\thuman\n", r"tax.tsv:2: expected 'EntryID<TAB>taxonID'"),
        ("A\t9606\nA\t10090\n", r"tax.tsv: protein 'A' appears more than once"),
    ],
)
def test_bad_taxonomy(tmp_path, text, message):
    assert_bad_file(tmp_path, read_taxonomy, "tax.tsv", text, message, "train_taxonomy")
