"""Commands import what they use: `cafa evaluate` (files), `validate-submission`, `ia` and `stats` run without
importing torch or MLflow (each runs in-process in a fresh interpreter, which then reports its sys.modules)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cafa_fixtures import OBO, TERMS_TSV, write

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "mlflow", "esm", "sklearn")
# os._exit after the report: what is asserted is the command's code and modules, not the interpreter's teardown, where
# a native library's thread pool can abort the process ("terminate called without an active exception") under load
CHILD = f"""
import json, os, sys
from pipelines.cli import main
code = main(json.loads(sys.argv[1]))
print(json.dumps({{"code": code, "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}), flush=True)
os._exit(0)
"""


def run_in_process(argv: list[str], cwd: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(argv)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def files(tmp_path):
    obo = write(tmp_path / "go.obo", OBO)
    terms = write(tmp_path / "terms.tsv", TERMS_TSV)
    proteins = sorted({line.split("\t")[0] for line in TERMS_TSV.splitlines()[1:] if line.strip()})
    fasta = write(tmp_path / "seqs.fasta", "".join(f">{p}\nMKVLAAGIVG\n" for p in proteins))
    pred = write(tmp_path / "pred.tsv", "".join(f"{p}\tGO:0000002\t0.5\n" for p in proteins))
    return {"obo": obo, "terms": terms, "fasta": fasta, "pred": pred, "dir": tmp_path}


@pytest.mark.parametrize("command", ["evaluate", "validate-submission", "ia", "stats"])
def test_light_commands_import_neither_torch_nor_mlflow(files, command):
    f = files
    argv = {
        "evaluate": ["evaluate", "--obo", f["obo"], "--truth", f["terms"], "--pred", f["pred"], "--out-json", "e.json"],
        "validate-submission": ["validate-submission", f["pred"], "--max-terms", "1500"],
        "ia": ["ia", "--obo", f["obo"], "--terms", f["terms"], "--out", "ia.tsv"],
        "stats": ["stats", "--fasta", f["fasta"], "--terms", f["terms"], "--obo", f["obo"]],
    }[command]
    report = run_in_process([str(a) for a in argv], f["dir"])
    assert report["code"] == 0
    assert report["loaded"] == []


def test_the_check_sees_a_heavy_import(files):
    report = run_in_process(
        ["make-tiny-esm", "--out", "tiny.pt", "--layers", "1", "--dim", "8", "--heads", "2"], files["dir"]
    )
    assert "torch" in report["loaded"]
