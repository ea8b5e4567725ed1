"""Submission writer (CAFA-6 rules) and validator (each violation named), plus `cafa validate-submission`."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from cafa_mlflow.errors import InputError
from cafa_mlflow.go.labels import TermMatrix, read_submission
from cafa_mlflow.io.submission import validate_submission, write_submission
from pipelines.cli import main as cafa
from tests.cafa_fixtures import OBO, write


def test_writer_rounds_drops_zeros_sorts_and_caps(tmp_path):
    scores = np.array(
        [[0.12345, 0.0004, 1.2, 0.5, 0.0456], [0.0, 0.0, 0.0, 0.0, 0.0], [0.3, 0.3, 0.9996, 0.2, 0.7]], dtype=np.float32
    )
    tm = TermMatrix(["A", "B", "C"], ["GO:1", "GO:2", "GO:3", "GO:4", "GO:5"], sp.csr_matrix(scores))
    path = tmp_path / "sub.tsv"
    assert write_submission(path, tm, max_terms=3) == 6
    assert path.read_text().splitlines() == [
        "A\tGO:3\t1",
        "A\tGO:4\t0.5",
        "A\tGO:1\t0.123",  # 0.0456 is 4th best: cut; 0.0004 rounds to 0: dropped
        "C\tGO:3\t1",
        "C\tGO:5\t0.7",
        "C\tGO:1\t0.3",  # B has no score: left out; tie GO:1/GO:2 by GO id
    ]
    assert not validate_submission(path)
    back = read_submission(path, terms=tm.terms)
    assert back.proteins == ["A", "C"] and back.matrix.toarray()[0].tolist() == pytest.approx([0.123, 0, 1, 0.5, 0])


def test_writer_lines_do_not_depend_on_column_order(tmp_path):
    """Ties go by GO id, not by column: a batch of `cafa predict` (whose columns are its own terms' union)
    writes the bytes the whole input would."""
    scores = np.array([[0.5, 0.5, 0.9, 0.5], [0.2, 0.2, 0.2, 0.0]], dtype=np.float32)
    terms = ["GO:4", "GO:2", "GO:9", "GO:3"]
    tm = TermMatrix(["A", "B"], terms, sp.csr_matrix(scores))
    flipped = TermMatrix(["A", "B"], terms[::-1], sp.csr_matrix(scores[:, ::-1]))
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    assert write_submission(a, tm, max_terms=3) == write_submission(b, flipped, max_terms=3) == 6
    assert a.read_bytes() == b.read_bytes()
    assert a.read_text().splitlines()[:3] == ["A\tGO:9\t0.9", "A\tGO:2\t0.5", "A\tGO:3\t0.5"]  # GO:4 cut


def test_writer_keeps_best_1500_and_three_significant_figures(tmp_path):
    rng = np.random.default_rng(0)
    scores = rng.random((2, 2000)).astype(np.float32) * 0.999 + 0.001
    tm = TermMatrix(["A", "B"], [f"GO:{j:07d}" for j in range(2000)], sp.csr_matrix(scores))
    path = tmp_path / "sub.tsv.gz"
    assert write_submission(path, tm) == 3000
    found = validate_submission(path)
    assert not found and found.n_proteins == 2 and found.n_lines == 3000
    back = read_submission(path, proteins=tm.proteins, terms=tm.terms).matrix.toarray()
    for row in range(2):
        kept = np.flatnonzero(back[row])
        assert len(kept) == 1500
        assert np.round(scores[row, kept], 3).min() >= np.round(np.sort(scores[row])[-1500], 3)  # the best ones
        np.testing.assert_allclose(back[row, kept], np.round(scores[row, kept], 3), atol=1e-6)


def test_writer_failure_leaves_old_file(tmp_path):
    path = tmp_path / "sub.tsv"
    path.write_text("old\n")

    class Broken(TermMatrix):
        @property
        def shape(self):
            raise RuntimeError("boom")

    tm = Broken(["A"], ["GO:1"], sp.csr_matrix(np.ones((1, 1))))
    with pytest.raises(RuntimeError):
        write_submission(path, tm)
    assert path.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["sub.tsv"]


BAD_LINES = [
    # (file text, rule, line)
    ("EntryID\tterm\tscore\nA\tGO:0000001\t0.5\n", "header", 1),
    ("A\tGO:0000001\tabc\n", "not_a_number", 1),
    ("A\tGO:0000001\t0.5\nA\tGO:0000002\t0\n", "score_range", 2),
    ("A\tGO:0000001\t1.5\n", "score_range", 1),
    ("A\tGO:0000001\t0.1234\n", "sig_figs", 1),
    ("A\tGO:0000001\t0.5\nA\tGO:0000002\t0.6\n", "unsorted", 2),
    ("A\tGO:0000001\t0.5\nA\tGO:0000001\t0.4\n", "duplicate", 2),
    ("A\tGO:0000001\t0.5\nB\tGO:0000001\t0.5\nA\tGO:0000002\t0.4\n", "not_contiguous", 3),
    ("A\tGO:0000001\t0.5\nA GO:0000002 0.4\n", "columns", 2),
    ("A\tGO:0000001\t0.5\nA\tGO:0000002\t0.4\tx\n", "columns", 2),
]


@pytest.mark.parametrize("text,rule,line", BAD_LINES)
def test_validator_names_each_violation(tmp_path, text, rule, line):
    found = validate_submission(write(tmp_path / "sub.tsv", text))
    assert [(v.rule, v.line) for v in found] == [(rule, line)]
    assert str(found[0]).startswith(f"{tmp_path / 'sub.tsv'}:{line}: [{rule}] protein ")


def test_validator_too_many_terms_and_unknown_term(tmp_path):
    lines = [f"A\tGO:{j:07d}\t0.5" for j in range(1501)] + ["B\tGO:0000001\t0.5"]
    found = validate_submission(write(tmp_path / "sub.tsv", "\n".join(lines) + "\n"))
    assert [(v.rule, v.line, v.protein) for v in found] == [("too_many_terms", 1501, "A")]
    from cafa_mlflow.go.ontology import load_obo

    onto = load_obo(write(tmp_path / "go.obo", OBO))
    text = "A\tGO:0000001\t0.5\nA\tGO:0000040\t0.4\nA\tGO:0000006\t0.3\nA\tGO:7777777\t0.2\n"
    found = validate_submission(write(tmp_path / "s2.tsv", text), ontology=onto)  # alt_id ok, obsolete/unknown not
    assert [(v.rule, v.line, v.term) for v in found] == [
        ("unknown_term", 3, "GO:0000006"),
        ("unknown_term", 4, "GO:7777777"),
    ]
    found = validate_submission(write(tmp_path / "s3.tsv", "EntryID\tterm\tscore\nA\tGO:0000001\t0.5\n"), ontology=onto)
    assert [(v.rule, v.line) for v in found] == [("header", 1)] and found.n_proteins == 1  # header: one violation only


def test_text_lines_allowed(tmp_path):
    text = "A\tText\t0.9\tbinds zinc, probably\nA\tGO:0000001\t0.5\nA\tText\t0.9\nB\tGO:0000001\t1\n\n"
    found = validate_submission(write(tmp_path / "sub.tsv", text))
    assert not found and (found.n_text, found.n_lines, found.n_proteins) == (2, 2, 2)
    assert read_submission(tmp_path / "sub.tsv").to_frame().to_dict("list") == {
        "protein": ["A", "B"],
        "term": ["GO:0000001", "GO:0000001"],
        "score": [0.5, 1.0],
    }


def test_read_submission_errors(tmp_path):
    with pytest.raises(InputError, match=r"sub.tsv:2: score 'x' is not a number"):
        read_submission(write(tmp_path / "sub.tsv", "A\tGO:1\t0.5\nA\tGO:2\tx\n"))
    with pytest.raises(InputError, match=r"s2.tsv:2: expected 'ACC<TAB>GO:id<TAB>score', got 2 fields"):
        read_submission(write(tmp_path / "s2.tsv", "A\tGO:1\t0.5\nA\tGO:2\n"))


def test_read_submission_keeps_max_and_first_appearance_order(tmp_path):
    text = "Z\tText\t0.9\nB\tGO:2\t0.2\nZ\tGO:1\t0.3\nB\tGO:2\t0.7\n\nB\tGO:2\t0.1\nA\tGO:3\t1e-3\n"
    tm = read_submission(write(tmp_path / "sub.tsv", text))  # Z's Text line comes first, its GO line after B's
    assert (tm.proteins, tm.terms) == (["B", "Z", "A"], ["GO:2", "GO:1", "GO:3"])
    np.testing.assert_array_equal(tm.matrix.toarray(), np.array([[0.7, 0, 0], [0, 0.3, 0], [0, 0, 0.001]], np.float32))
    tm = read_submission(tmp_path / "sub.tsv", proteins=["A", "B", "Q"], terms=["GO:3", "GO:2"])  # others dropped
    np.testing.assert_array_equal(tm.matrix.toarray(), np.array([[0.001, 0], [0, 0.7], [0, 0]], np.float32))
    with pytest.raises(InputError, match=r"s2.tsv:1: score 'score' is not a number"):
        read_submission(write(tmp_path / "s2.tsv", "EntryID\tterm\tscore\nA\tGO:1\t0.5\n"))
    with pytest.raises(InputError, match=r"s3.tsv:3: score 'nan' is not a number"):
        read_submission(write(tmp_path / "s3.tsv", "A\tText\t0.5\tfree text\nA\tGO:1\t0.5\nA\tGO:2\tnan\n"))


def test_cli_exit_codes(tmp_path, capsys):
    obo = write(tmp_path / "go.obo", OBO)
    good = write(tmp_path / "good.tsv", "A\tGO:0000001\t0.5\nA\tText\t0.9\tnote\n")
    assert cafa(["validate-submission", str(good), "--obo", str(obo)]) == 0
    assert f"OK {good}: 1 proteins, 1 lines (1 Text lines)" in capsys.readouterr().out
    bad = write(tmp_path / "bad.tsv", "A\tGO:0000001\t0.5\nA\tGO:0000009\t0.1234\n")
    assert cafa(["validate-submission", str(bad), "--obo", str(obo)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}:2: [sig_figs]" in out and f"{bad}:2: [unknown_term]" in out
    assert "INVALID" in out and "sig_figs: 1" in out and "unknown_term: 1" in out
    assert cafa(["validate-submission", str(tmp_path / "missing.tsv")]) == 2
    assert "missing.tsv: file not found" in capsys.readouterr().err
