"""Bad inputs to the evaluator, `cafa ia` and the OBO reader: one clear message, exit status 2, nothing
written; rule breaks that do not stop the metric: one warning per rule (count and example)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from cafa_mlflow.errors import InputError
from cafa_mlflow.evaluation.scorer import Scorer
from cafa_mlflow.evaluation.truth import read_truth
from cafa_mlflow.go.labels import read_submission
from cafa_mlflow.go.ontology import load_obo
from pipelines.cli import main as cafa
from tests.cafa_fixtures import OBO, write

ROOT_STANZA = "id: GO:0000001\nname: bp root\nnamespace: biological_process\n"
TRUTH = "EntryID\tterm\taspect\nA\tGO:0000004\tP\nB\tGO:0000021\tF\nB\tGO:0000011\tC\n"


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CAFA_CACHE_DIR", str(tmp_path / "cache"))


def _ia_run(tmp_path, obo_text: str, terms_text: str = TRUTH) -> tuple[int, str, object]:
    obo, terms = write(tmp_path / "go.obo", obo_text), write(tmp_path / "terms.tsv", terms_text)
    out = tmp_path / "out" / "IA.tsv"
    return cafa(["ia", "--obo", str(obo), "--terms", str(terms), "--out", str(out)]), str(obo), out


@pytest.mark.parametrize(
    "obo_text,message",
    [
        (
            OBO.replace(ROOT_STANZA, ROOT_STANZA + "is_a: GO:0000005\n"),
            r"go.obo: the is_a/part_of edges form a cycle: GO:0000001 -> GO:0000005 -> GO:0000004 -> GO:0000003 "
            r"-> GO:0000001",
        ),
        (
            OBO.replace("is_a: GO:0000001\n\n", "is_a: GO:0000001\nis_a: GO:0009999\n\n"),
            r"go.obo: term GO:0000003 names parent GO:0009999, which no \[Term\] stanza defines",
        ),
        (OBO[:-5], r"go.obo:81: the last line is cut \(no end of line\)"),
        (
            OBO.replace("id: X:2\nname: dog\nnamespace: animal\n", "id: X:2\nname: dog\n"),
            r"go.obo:72: term X:2 has no 'namespace:' line while the other terms have one",
        ),
    ],
    ids=["cycle", "undefined-parent", "cut-mid-line", "no-namespace"],
)
def test_bad_obo_is_an_error_naming_the_terms(tmp_path, capsys, obo_text, message):
    code, obo, out = _ia_run(tmp_path, obo_text)
    assert code == 2 and not out.parent.exists()
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    with pytest.raises(InputError, match=message):
        load_obo(obo)


def test_cycle_through_part_of_is_found(tmp_path):
    text = OBO.replace(ROOT_STANZA, ROOT_STANZA + "relationship: part_of GO:0000004\n")
    with pytest.raises(InputError, match=r"cycle: GO:0000001 -> GO:0000004 -> GO:0000003 -> GO:0000001"):
        load_obo(write(tmp_path / "go.obo", text))


def test_ia_without_usable_proteins_writes_nothing(tmp_path, capsys):
    code, _, out = _ia_run(tmp_path, OBO, "A\tGO:9999999\tP\nB\tGO:0000006\tP\n")
    assert code == 2 and not out.parent.exists()
    assert "no annotation uses a live term" in capsys.readouterr().err


def _evaluate(tmp_path, pred_text: str, ia: str | None = None) -> tuple[int, object]:
    obo, truth = write(tmp_path / "go.obo", OBO), write(tmp_path / "truth.tsv", TRUTH)
    pred, out = write(tmp_path / "bad.tsv", pred_text), tmp_path / "res" / "test.json"
    args = ["evaluate", "--obo", str(obo), "--truth", str(truth), "--pred", str(pred), "--out-json", str(out)]
    return cafa(args + (["--ia", write(tmp_path / "ia.tsv", ia).as_posix()] if ia else [])), out


@pytest.mark.parametrize(
    "score,line_message",
    [
        ("1.5", "bad.tsv:2: score '1.5' is not in (0, 1]"),
        ("inf", "bad.tsv:2: score 'inf' is not in (0, 1]"),
        ("0", "bad.tsv:2: score '0' is not in (0, 1]"),
        ("-0.2", "bad.tsv:2: score '-0.2' is not in (0, 1]"),
        ("nan", "bad.tsv:2: score 'nan' is not a number"),
    ],
)
def test_scores_outside_0_1_are_an_error(tmp_path, capsys, score, line_message):
    code, out = _evaluate(tmp_path, f"A\tGO:0000004\t0.5\nA\tGO:0000002\t{score}\n")
    assert code == 2 and not out.parent.exists()
    err = capsys.readouterr().err
    assert line_message in err and len(err.strip().splitlines()) == 1


def test_empty_submission_is_a_one_line_error(tmp_path, capsys):
    code, out = _evaluate(tmp_path, "")
    err = capsys.readouterr().err
    assert code == 2 and not out.parent.exists()
    assert err.strip() == f"error: {tmp_path / 'bad.tsv'}: the file is empty; expected 'ACC<TAB>GO:id<TAB>score' lines."
    assert cafa(["validate-submission", str(tmp_path / "bad.tsv")]) == 2


def test_rule_breaks_warn_once_per_rule_then_score(tmp_path, caplog):
    path = write(
        tmp_path / "sub.tsv", "A\tGO:0000004\t0.5\nA\tGO:0000002\t0.1234\nA\tGO:0000002\t0.3\nB\tGO:0000021\t1\n"
    )
    with caplog.at_level(logging.WARNING):
        tm = read_submission(path, max_terms=2)
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: 1 proteins have more than 2 terms (a submission rule), e.g. A with 3; all are scored",
        f"{path}: 1 scores have more than 3 significant figures (a submission rule), e.g. 'A GO:0000002 0.1234'",
        f"{path}: 1 (protein, term) pairs are listed more than once (a submission rule); each keeps its highest score",
    ]
    np.testing.assert_array_equal(tm.matrix.toarray(), np.array([[0.5, 0.3, 0], [0, 0, 1]], np.float32))


def test_evaluate_warns_about_too_many_terms_before_the_metric(tmp_path, caplog, capsys):
    lines = [f"A\tGO:{j:07d}\t0.5" for j in range(1501)]
    with caplog.at_level(logging.WARNING):
        code, out = _evaluate(tmp_path, "\n".join(lines) + "\n")
    assert code == 0 and out.exists()
    assert any("1 proteins have more than 1500 terms" in r.getMessage() for r in caplog.records)


def test_ia_file_missing_scored_terms_and_contradicting_aspect_letters_warn(tmp_path, caplog):
    onto = load_obo(write(tmp_path / "go.obo", OBO))
    with caplog.at_level(logging.WARNING):
        truth = read_truth(write(tmp_path / "t.tsv", TRUTH + "C\tGO:0000002\tF\nC\tGO:0000003\tC\n"), onto)
        Scorer(onto, truth, {"GO:0000004": 1.0, "GO:0000002": 0.5})
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 't.tsv'}: 2 lines give an aspect letter that contradicts the ontology's namespace of the term, "
        "e.g. C GO:0000002 F, C GO:0000003 C; the ontology's namespace is used",
        "IA file: 6 of the 8 terms in the propagated truth have no IA value (weight 0 in the weighted metrics), "
        "e.g. GO:0000001, GO:0000003, GO:0000010, GO:0000011, GO:0000020; is it the IA file of this ontology?",
    ]
