"""How DIAMOND is called: queries in chunks (same hits as one call); the stall watchdog (a search that uses no CPU
is killed and started once more, a busy one is left alone)."""

import os
import shutil
import sys

import pandas as pd
import pytest
from predictor_fixtures import write_fasta

from cafa_mlflow.data import diamond
from cafa_mlflow.errors import InputError, ToolError

STALL_S = 1.0  # the tests' stall limit (the product's is a minute)


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch):
    monkeypatch.setattr(diamond, "STALL_POLL_S", 0.1)


def _script(tmp_path, body: str) -> str:
    path = tmp_path / "fake-diamond"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_a_stalled_run_is_killed_and_started_again(tmp_path, caplog):
    """First call hangs without CPU (as DIAMOND 2.1's futex deadlock does), the second one works."""
    first, done = tmp_path / "first.pid", tmp_path / "done"
    fake = _script(tmp_path, f"if [ -f {first} ]; then touch {done}; else echo $$ > {first}; exec sleep 600; fi")
    diamond._run([fake], "fake search", stall_s=STALL_S)
    assert done.is_file()
    with pytest.raises(ProcessLookupError):  # the hung process was killed and reaped, not left behind
        os.kill(int(first.read_text()), 0)
    assert "fake search used no CPU for 1 s (try 1): killed" in caplog.text


def test_a_run_that_stalls_every_time_is_one_clear_error(tmp_path):
    fake = _script(tmp_path, "exec sleep 600")
    with pytest.raises(ToolError, match=r"fake search stalled 2 times \(no CPU for 1 s each\).*threads=1"):
        diamond._run([fake], "fake search", stall_s=STALL_S)


def test_a_busy_run_is_not_killed(tmp_path, caplog):
    """Three stall limits of pure CPU work finish untouched."""
    done = tmp_path / "done"
    busy = f"import time, pathlib\nt = time.process_time()\nwhile time.process_time() - t < {3 * STALL_S}: pass\n"
    diamond._run([sys.executable, "-c", busy + f"pathlib.Path({str(done)!r}).touch()"], "busy", stall_s=STALL_S)
    assert done.is_file()
    assert "no CPU" not in caplog.text


def test_a_failing_run_reports_its_exit_status_and_last_words(tmp_path):
    fake = _script(tmp_path, "echo 'Error: database format' >&2; exit 3")
    with pytest.raises(InputError, match=r"fake search failed \(exit 3\): Error: database format"):
        diamond._run([fake], "fake search", stall_s=STALL_S)


@pytest.mark.skipif(shutil.which("diamond") is None, reason="diamond not installed")
def test_queries_in_chunks_find_the_same_hits_as_one_call(tmp_path, monkeypatch):
    fasta = write_fasta(tmp_path / "pool.fasta", ["HBA", "HBB", "LYZ", "UBQ"])
    db = diamond.build_db(fasta, tmp_path / "db", None, 1)
    whole = diamond.search(db, fasta, threads=1, out=tmp_path / "whole.tsv")
    monkeypatch.setattr(diamond, "QUERY_CHUNK", 1)  # one DIAMOND call per query
    chunked = diamond.search(db, fasta, threads=1, out=tmp_path / "chunked.tsv")
    assert {"HBA", "HBB", "LYZ", "UBQ"} <= set(whole["qseqid"])  # every query (its self-hit at least)
    pd.testing.assert_frame_equal(chunked, whole)
    raw = [sorted((tmp_path / name).read_text().splitlines()) for name in ("whole.tsv", "chunked.tsv")]
    assert raw[0] == raw[1] and len(raw[0]) == len(whole)
