"""`cafa predict` and `cafa merge-shards` under a careless operator: files the product did not write are never
replaced, an output that is an input (or another output) is refused in one line before any work, SIGTERM ends
DIAMOND and removes the temporary folders, an unreachable Ray address is one line, a damaged shard manifest
is one line naming it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from cafa_fixtures import snapshot, write
from test_predict import NAME, champion  # noqa: F401  (the fixture: a tiny registered champion)
from test_predict_shards import fake_part, query_fasta

from cafa_mlflow.errors import ConfigError, OutputError
from cafa_mlflow.io import outputs
from cafa_mlflow.workflows import predict_ray, shards
from pipelines.cli import main as cafa

REPO = Path(__file__).resolve().parents[1]


def one_error_line(capsys) -> str:
    """The command's stderr: exactly one `error:` line, no traceback."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


# ---- the marker rule for single files ----------------------------------------------------------------------


def test_a_file_is_replaced_only_when_the_product_wrote_it_as_it_is(tmp_path):
    path = write(tmp_path / "sub.tsv", "mine\n")
    with pytest.raises(OutputError, match=r"sub\.tsv: exists and cafa-mlflow did not write it .*--out") as err:
        outputs.check_file_replaceable(path, "--out")
    assert "\n" not in str(err.value) and ".sub.tsv.cafa-mlflow" in str(err.value)
    outputs.mark_file(path)
    assert outputs.check_file_replaceable(path, "--out") == path  # ours, unchanged
    path.write_text("edited\n")  # same size, other bytes: no longer what the product wrote
    with pytest.raises(OutputError, match="did not write it"):
        outputs.check_file_replaceable(path, "--out")
    outputs.file_marker(path).write_text("")  # an empty sidecar vouches (an older cafa-mlflow's output)
    assert outputs.check_file_replaceable(path, "--out") == path
    assert outputs.check_file_replaceable(tmp_path / "new.tsv", "--out") == tmp_path / "new.tsv"


def test_an_output_may_be_neither_an_input_nor_another_output(tmp_path):
    fasta = write(tmp_path / "q.fasta", ">P1\nMKV\n")
    with pytest.raises(OutputError, match=r"^--out and --fasta name the same file .*q\.fasta: .*an input"):
        outputs.check_distinct({"--fasta": fasta}, {"--out": fasta})
    with pytest.raises(OutputError, match=r"^--evidence and --out name the same file .*another output"):
        outputs.check_distinct({}, {"--out": tmp_path / "x.tsv", "--evidence": tmp_path / "." / "x.tsv"})
    os.link(fasta, tmp_path / "link.fasta")  # another name of the same file
    with pytest.raises(OutputError, match="same file"):
        outputs.check_distinct({"--fasta": fasta}, {"--out": tmp_path / "link.fasta"})
    outputs.check_distinct({"--fasta": fasta}, {"--out": tmp_path / "a.tsv", "--evidence": None})


@pytest.mark.parametrize(
    "case",
    ["user file as --out", "user file as --evidence", "--fasta X --out X", "--out X --evidence X", "shard"],
)
def test_predict_refuses_before_any_work(tmp_path, capsys, case):
    fasta = write(tmp_path / "q.fasta", ">P1 9606\nMKVLAAGIVG\n")
    mine = write(tmp_path / "mine.tsv", "P1\tGO:0008150\t0.5\n")
    flags = {
        "user file as --out": ["--out", str(mine)],
        "user file as --evidence": ["--out", str(tmp_path / "s.tsv"), "--evidence", str(mine)],
        "--fasta X --out X": ["--out", str(fasta)],
        "--out X --evidence X": ["--out", str(tmp_path / "s.tsv"), "--evidence", str(tmp_path / "s.tsv")],
        "shard": ["--out", str(tmp_path / "s.tsv"), "--shard", "0/2", "--evidence", str(tmp_path / "s.tsv")],
    }[case]
    before = snapshot(tmp_path)
    # an unreachable tracking store: the refusal comes before any run, model or FASTA is touched
    argv = ["predict", "--fasta", str(fasta), *flags, "--tracking-uri", f"sqlite:///{tmp_path}/no/such.db"]
    assert cafa(argv) == 2
    err = one_error_line(capsys)
    assert ("did not write it" in err) if case.startswith("user") else ("name the same file" in err)
    assert snapshot(tmp_path) == before  # the FASTA, the user's file: untouched; nothing new


def test_predict_replaces_its_own_submission_but_not_an_edited_one(tmp_path, champion, capsys):  # noqa: F811
    uri, _ = champion
    fasta, out = query_fasta(tmp_path), tmp_path / "sub.tsv"
    argv = ["predict", "--fasta", str(fasta), "--out", str(out), "--tracking-uri", uri]
    argv += ["--tracking-registered-model", NAME, "--embed-out", str(tmp_path / "emb"), "--threads", "1"]
    argv += ["--tracking-system-metrics", "false", "--tracking-experiment", "predict-test"]
    assert cafa(argv) == 0
    first = out.read_bytes()
    assert json.loads(outputs.file_marker(out).read_text())["sha256"]
    assert cafa(argv) == 0 and out.read_bytes() == first  # its own file: replaced (by the same bytes)
    out.write_bytes(first + b"P9\tGO:0008150\t0.5\n")  # the user edits it
    capsys.readouterr()
    assert cafa(argv) == 2
    assert "did not write it" in one_error_line(capsys) and out.read_bytes().endswith(b"P9\tGO:0008150\t0.5\n")


# ---- merge-shards ----------------------------------------------------------------------------------------


def test_merge_refuses_a_users_file_and_one_path_for_two_outputs(tmp_path, capsys):
    out = tmp_path / "sub.tsv"
    for i in range(2):
        fake_part(out, i, 2)
    assert cafa(["merge-shards", "--out", str(out), "--evidence", str(out)]) == 2
    assert "--evidence and --out name the same file" in one_error_line(capsys)
    part = shards.part_path(out, 0, 2)
    assert cafa(["merge-shards", "--out", str(part), str(part), str(shards.part_path(out, 1, 2))]) == 2
    assert "name the same file" in one_error_line(capsys)
    assert cafa(["merge-shards", "--out", str(out)]) == 0
    capsys.readouterr()
    assert cafa(["merge-shards", "--out", str(out)]) == 0  # its own output: replaced
    out.write_text("mine\n")
    capsys.readouterr()
    assert cafa(["merge-shards", "--out", str(out)]) == 2
    assert "did not write it" in one_error_line(capsys) and out.read_text() == "mine\n"


@pytest.mark.parametrize(
    "damage",
    ["missing key", "non-integer count", "corrupt JSON", "not an object"],
)
def test_a_damaged_manifest_is_one_line_naming_it(tmp_path, capsys, damage):
    out = tmp_path / "sub.tsv"
    parts = [fake_part(out, i, 2) for i in range(2)]
    manifest = shards.manifest_path(parts[1])
    data = json.loads(manifest.read_text())
    if damage == "missing key":
        del data["proteins"]
        manifest.write_text(json.dumps(data))
    elif damage == "non-integer count":
        manifest.write_text(json.dumps({**data, "shards": "2"}))
    elif damage == "corrupt JSON":
        manifest.write_text(manifest.read_text()[:40])
    else:
        manifest.write_text("[1, 2]")
    assert cafa(["merge-shards", "--out", str(out)]) == 2
    err = one_error_line(capsys)
    assert str(manifest) in err
    if damage == "missing key":
        assert "lacks proteins" in err
    assert not out.exists()


# ---- Ray ---------------------------------------------------------------------------------------------------


def test_an_unreachable_ray_address_is_one_line_naming_it(tmp_path, capsys):
    pytest.importorskip("ray")
    fasta = write(tmp_path / "q.fasta", ">P1 9606\nMKVLAAGIVG\n")
    argv = ["predict", "--engine", "ray", "--ray-address", "127.0.0.1:1", "--fasta", str(fasta)]
    argv += ["--out", str(tmp_path / "s.tsv"), "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]
    assert cafa(argv) == 2
    err = one_error_line(capsys)
    assert "cannot reach the Ray cluster at 127.0.0.1:1" in err and "--ray-address" in err
    assert cafa([*argv[:4], "nonsense", *argv[5:]]) == 2
    assert "expected HOST:PORT" in one_error_line(capsys)
    assert not (tmp_path / "s.tsv").exists() and not (tmp_path / "mlflow.db").exists()  # before the run opens


def serve_once(answer: bytes) -> int:
    """A local port whose first connection gets `answer` once the client has sent its first bytes."""
    server = socket.create_server(("127.0.0.1", 0))

    def reply() -> None:
        conn, _ = server.accept()
        with conn, server:
            conn.recv(64)
            conn.sendall(answer)

    threading.Thread(target=reply, daemon=True).start()
    return server.getsockname()[1]


def test_a_port_where_another_service_listens_is_refused_at_once():
    """ray.init would retry for minutes against a port that accepts connections but is not Ray's (an HTTP
    server here); a gRPC server's SETTINGS frame (what Ray's GCS sends) passes."""
    port = serve_once(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    with pytest.raises(ConfigError, match=rf"127.0.0.1:{port} within 5 s \(the service there is not Ray's"):
        predict_ray.check_reachable(f"127.0.0.1:{port}", 5)
    predict_ray.check_reachable(f"127.0.0.1:{serve_once(bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))}", 5)


# ---- SIGTERM -----------------------------------------------------------------------------------------------


def fake_diamond(folder: Path, started: Path) -> Path:
    """`diamond` on PATH that hangs in `blastp` (its pid in `started`), the real one for anything else."""
    real = subprocess.run(["sh", "-c", "command -v diamond"], capture_output=True, text=True).stdout.strip()
    folder.mkdir()
    script = folder / "diamond"
    script.write_text(
        f'#!/bin/sh\nif [ "$1" = blastp ]; then echo $$ > {started}.tmp; mv {started}.tmp {started}; '
        f'exec sleep 600; fi\nexec {real} "$@"\n'
    )
    script.chmod(0o755)
    return folder


@pytest.mark.slow
def test_sigterm_ends_diamond_and_removes_temporary_folders(tmp_path, champion):  # noqa: F811
    import shutil

    if shutil.which("diamond") is None:
        pytest.skip("diamond not installed (the champion has no homology member)")
    uri, _ = champion
    fasta, started, tmp = query_fasta(tmp_path), tmp_path / "diamond.pid", tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp)}
    env["PATH"] = f"{fake_diamond(tmp_path / 'bin', started)}:{env['PATH']}"
    argv = ["--fasta", str(fasta), "--out", str(tmp_path / "sub.tsv"), "--tracking-uri", uri]
    argv += ["--tracking-registered-model", NAME, "--embed-out", str(tmp_path / "emb"), "--threads", "1"]
    argv += ["--tracking-system-metrics", "false", "--tracking-experiment", "predict-test"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.predict", *argv], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 240
        while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert started.exists(), f"DIAMOND never started: {proc.poll()} {proc.stderr.read() if proc.poll() else ''}"
        diamond_pid = int(started.read_text())
        assert psutil.pid_exists(diamond_pid) and any(tmp.glob("cafa-*"))  # a search and its folder, running
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "interrupted" in err
    gone = not psutil.pid_exists(diamond_pid) or psutil.Process(diamond_pid).status() == psutil.STATUS_ZOMBIE
    assert gone, "DIAMOND outlived `cafa predict`"
    assert list(tmp.glob("cafa-*")) == []  # every temporary folder removed
    assert not (tmp_path / "sub.tsv").exists()
