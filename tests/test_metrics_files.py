"""`cafa evaluate --pred` with several files or a folder: ontology and truth read once, each file scored
as if alone, the JSON keyed by file name."""

from __future__ import annotations

import json

import pytest

from cafa_mlflow.errors import InputError
from cafa_mlflow.evaluation.files import result_names, submission_paths
from pipelines.cli import main as cafa
from tests.cafa_fixtures import OBO, write

TRUTH = "EntryID\tterm\taspect\nA\tGO:0000004\tP\nB\tGO:0000002\tP\nB\tGO:0000021\tF\n"
PREDS = {
    "a.tsv": "A\tGO:0000004\t0.8\nB\tGO:0000003\t0.4\nB\tGO:0000021\t0.3\n",
    "b.tsv": "A\tGO:0000002\t0.5\nB\tGO:0000005\t0.9\n",
}


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.setenv("CAFA_CACHE_DIR", str(tmp_path / "cache"))
    for name, text in PREDS.items():
        write(tmp_path / "preds" / name, text)
    return write(tmp_path / "go.obo", OBO), write(tmp_path / "truth.tsv", TRUTH), tmp_path


def _run(files, pred: str, out) -> int:
    obo, truth, _ = files
    return cafa(["evaluate", "--obo", str(obo), "--truth", str(truth), "--pred", pred, "--out-json", str(out)])


def test_folder_and_list_equal_one_file_at_a_time(files, capsys):
    root = files[2]
    alone = {}
    for name in PREDS:
        assert _run(files, str(root / "preds" / name), root / f"{name}.json") == 0
        alone[name] = json.loads((root / f"{name}.json").read_text())
    assert _run(files, str(root / "preds"), root / "folder.json") == 0
    assert "2 files scored, " in capsys.readouterr().out
    assert json.loads((root / "folder.json").read_text()) == alone
    listed = f"{root / 'preds' / 'b.tsv'},{root / 'preds' / 'a.tsv'}"
    assert _run(files, listed, root / "list.json") == 0
    assert list(json.loads((root / "list.json").read_text())) == ["b.tsv", "a.tsv"]
    assert alone["a.tsv"]["BPO"]["f"] != alone["b.tsv"]["BPO"]["f"]  # two different results


def test_paths_and_names(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="the prediction folder holds no files"):
        submission_paths(tmp_path / "empty")
    with pytest.raises(InputError, match="missing.tsv: submission file not found"):
        submission_paths(f"{write(tmp_path / 'x' / 's.tsv', 'A')},{tmp_path / 'missing.tsv'}")
    same = [write(tmp_path / "y" / "s.tsv", "A"), tmp_path / "x" / "s.tsv"]
    assert result_names(same) == [str(p) for p in same]  # repeated file names: full paths
