"""Faults of inputs and of the machine: corrupt/truncated compression, binary or UTF-16 text, full or
read-only outputs. Each ends in one line naming the file, exit status 2, and earlier outputs unchanged."""

from __future__ import annotations

import errno
import gzip
import lzma
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from cafa_mlflow.errors import BUG_NOTE, InputError, OutputError, run_cli
from cafa_mlflow.go.labels import read_submission
from cafa_mlflow.go.ontology import load_obo
from cafa_mlflow.io.fasta import read_fasta, write_fasta
from cafa_mlflow.io.outputs import mark_file
from cafa_mlflow.io.submission_check import validate_submission
from cafa_mlflow.io.taxonomy import read_taxonomy
from cafa_mlflow.io.terms import read_terms
from cafa_mlflow.io.text import atomic_dir, atomic_write, check_writable, open_text
from pipelines.cli import main as cafa
from tests.cafa_fixtures import OBO, TERMS_TSV, assert_prepare_writes_nothing, snapshot, write

ALPHABET = "ACDEFGHIKLMNPQRSTVWY"


def big_fasta(n: int = 400) -> str:
    """Random (incompressible enough) sequences, so that a cut compressed file still yields records first."""
    rng = random.Random(0)
    return "".join(f">P{i}\n{''.join(rng.choice(ALPHABET) for _ in range(300))}\n" for i in range(n))


def cut(data: bytes) -> bytes:
    return data[: len(data) // 2]


def bad_crc(data: bytes) -> bytes:
    """A gzip file whose data decompresses but whose checksum (trailer) does not match: seen only at its end."""
    return data[:-8] + bytes(b ^ 0xFF for b in data[-8:-4]) + data[-4:]


# name -> (bytes of the file given `text`, message)
BAD = {
    "cut.xz": (lambda t: cut(lzma.compress(t.encode())), r"truncated or corrupt xz data"),
    "cut.gz": (lambda t: cut(gzip.compress(t.encode())), r"truncated or corrupt gzip data"),
    "badcrc.gz": (lambda t: bad_crc(gzip.compress(t.encode())), r"truncated or corrupt gzip data \(CRC check failed"),
    "plain.gz": (lambda t: t.encode(), r"truncated or corrupt gzip data \(Not a gzipped file"),
    "utf16.txt": (lambda t: t.encode("utf-16"), r"UTF-16 text; save it as UTF-8"),
    "binary.txt": (lambda t: b"\x00\x01\x02\xff" * 64 + t.encode(), r"binary data \(NUL bytes\)"),
    "latin1.txt": (lambda t: t.replace("\n", " caf\xe9\n", 3).encode("latin-1"), r"not UTF-8 text \(byte b'\\xe9'"),
    "packed.txt": (lambda t: lzma.compress(t.encode()), r"xz-compressed data without a .xz suffix"),
}


def bad_file(folder: Path, kind: str, stem: str, text: str) -> tuple[Path, str]:
    """A bad variant `kind` of a file holding `text`; returns (path, regex of the expected message)."""
    make, message = BAD[kind]
    path = folder / f"{stem}.{kind.replace('.txt', '')}" if kind.endswith(".txt") else folder / f"{stem}.{kind}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(make(text))
    return path, rf"{path.name}: {message}"


@pytest.mark.parametrize("kind", BAD)
def test_bad_fasta_is_one_input_error_and_prepare_writes_nothing(tmp_path, kind):
    path, message = bad_file(tmp_path / "in", kind, "train.fasta", big_fasta())
    with pytest.raises(InputError, match=message) as err:
        list(read_fasta(path))
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert_prepare_writes_nothing(tmp_path / "prep", message, train_fasta=path)


def test_truncated_xz_fails_mid_stream_after_good_records(tmp_path):
    path, message = bad_file(tmp_path, "cut.xz", "train.fasta", big_fasta())
    records = read_fasta(path)
    assert next(records).id == "P0"  # decompression fails lazily, further down: still one clear error
    with pytest.raises(InputError, match=message):
        list(records)


@pytest.mark.parametrize("kind", ["cut.xz", "badcrc.gz", "utf16.txt", "binary.txt"])
@pytest.mark.parametrize(
    "reader,stem,text,key",
    [
        (load_obo, "go.obo", OBO * 40, "obo"),
        (read_terms, "terms.tsv", TERMS_TSV + "".join(f"Q{i}\tGO:0000002\tP\n" for i in range(3000)), "train_terms"),
        (read_taxonomy, "tax.tsv", "".join(f"P{i}\t9606\n" for i in range(3000)), "train_taxonomy"),
    ],
)
def test_bad_obo_terms_taxonomy(tmp_path, kind, reader, stem, text, key):
    path, message = bad_file(tmp_path / "in", kind, stem, text)
    with pytest.raises(InputError, match=message):
        reader(path)
    assert_prepare_writes_nothing(tmp_path / "prep", message, **{key: path})


SUBMISSION = "".join(f"P{i}\tGO:{i:07d}\t0.{i % 9 + 1}\n" for i in range(20000))


@pytest.mark.parametrize("kind", ["cut.xz", "cut.gz", "badcrc.gz", "plain.gz", "utf16.txt", "binary.txt"])
def test_bad_submission_both_readers_and_cli(tmp_path, kind, capsys):
    path, message = bad_file(tmp_path, kind, "sub.tsv", SUBMISSION)
    with pytest.raises(InputError, match=message):
        read_submission(path)  # pyarrow reads through the same checked stream
    with pytest.raises(InputError, match=message):
        validate_submission(path)
    assert cafa(["validate-submission", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {path}: ") and "Traceback" not in err


def test_stats_cli_on_corrupt_fasta_exits_2(tmp_path, capsys):
    fasta, _ = bad_file(tmp_path, "badcrc.gz", "s.fasta", big_fasta())
    terms, obo = write(tmp_path / "terms.tsv", TERMS_TSV), write(tmp_path / "go.obo", OBO)
    assert cafa(["stats", "--fasta", str(fasta), "--terms", str(terms), "--obo", str(obo)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{fasta}: truncated or corrupt gzip data" in err


def test_utf8_bom_is_skipped(tmp_path):
    path = tmp_path / "bom.fasta"
    path.write_bytes(b"\xef\xbb\xbf>A\nMK\n")
    assert [r.id for r in read_fasta(path)] == ["A"]
    with open_text(path, "rb") as handle:  # bytes are left as they are
        assert handle.read(3) == b"\xef\xbb\xbf"


# ---- outputs: full disk, read-only or forbidden locations -------------------------------------------


def failing(code: int):
    """A stand-in for an os/tempfile call that fails with OSError `code` (as on a full or read-only disk)."""

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(args[0]) if args else None)

    return fail


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_atomic_write_fault_is_one_line_and_keeps_old_file(tmp_path, monkeypatch, code):
    out = tmp_path / "out"
    write(out / "sub.tsv", "old content\n")
    before = snapshot(out)

    class Full:
        """A handle whose writes fail like a full or read-only disk."""

        def __init__(self, real):
            self.real = real

        def __getattr__(self, name):
            return getattr(self.real, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.real.close()

        def write(self, data):
            raise OSError(code, os.strerror(code))

    real_open = open
    monkeypatch.setattr("builtins.open", lambda *a, **k: Full(real_open(*a, **k)))
    with pytest.raises(OutputError, match=rf"^{out / 'sub.tsv'}: cannot write \(.*{errno.errorcode[code]}\)") as err:
        with atomic_write(out / "sub.tsv") as handle:
            handle.write("new content\n")
    monkeypatch.undo()
    assert "\n" not in str(err.value)
    assert snapshot(out) == before  # old file kept, no temporary file left


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_atomic_write_fault_at_rename_and_at_create(tmp_path, monkeypatch, code):
    out = tmp_path / "out"
    write(out / "m.json", "{}\n")
    before = snapshot(out)
    monkeypatch.setattr("cafa_mlflow.io.text.os.replace", failing(code))
    with pytest.raises(OutputError, match=r"m.json: cannot write"):
        with atomic_write(out / "m.json") as handle:
            handle.write('{"a": 1}\n')
    assert snapshot(out) == before
    monkeypatch.setattr("cafa_mlflow.io.text.tempfile.mkstemp", failing(code))
    with pytest.raises(OutputError, match=r"m.json: cannot write"):
        with atomic_write(out / "m.json") as handle:
            handle.write("x")
    assert snapshot(out) == before


def test_atomic_write_leaves_other_oserrors_alone(tmp_path):
    with pytest.raises(FileNotFoundError):  # a fault of another file inside the block is not ours to rename
        with atomic_write(tmp_path / "x.txt") as handle:
            handle.write(open(tmp_path / "missing.txt").read())
    assert snapshot(tmp_path) == {}


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES])
def test_atomic_dir_fault_keeps_old_folder(tmp_path, monkeypatch, code):
    model = tmp_path / "pred" / "model"
    write(model / "config.json", "old\n")
    write(model / ".cafa-mlflow", "{}\n")  # made by the product: may be replaced
    before = snapshot(tmp_path)
    with pytest.raises(OutputError, match=rf"^{model}: cannot write \(.*{errno.errorcode[code]}"):
        with atomic_dir(model) as folder:
            (folder / "config.json").write_text("new\n")
            raise OSError(code, os.strerror(code), str(folder / "weights.pt"))
    assert snapshot(tmp_path) == before
    with pytest.raises(OutputError, match=rf"^{model / 'config.json'}: cannot write \(.*{errno.errorcode[code]}"):
        with atomic_dir(model) as folder:  # a file written inside is named where it was going to be
            monkeypatch.setattr("cafa_mlflow.io.text.os.replace", failing(code))
            with atomic_write(folder / "config.json") as handle:
                handle.write("new\n")
    monkeypatch.undo()
    assert snapshot(tmp_path) == before
    monkeypatch.setattr("cafa_mlflow.io.outputs.write_marker", failing(code))
    with pytest.raises(OutputError, match=rf"^{model}: cannot write"):
        with atomic_dir(model):
            pass
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_check_writable_probes_before_work(tmp_path, monkeypatch, code):
    assert check_writable(tmp_path / "new" / "sub.tsv") == tmp_path / "new" / "sub.tsv"
    assert not (tmp_path / "new").exists() and snapshot(tmp_path) == {}  # the probe and its folders are gone
    check_writable(tmp_path / "emb", folder=True)
    assert not (tmp_path / "emb").exists()
    (tmp_path / "emb").mkdir()
    check_writable(tmp_path / "emb", folder=True)
    assert (tmp_path / "emb").is_dir()  # an existing folder stays
    with pytest.raises(OutputError, match=r"is a folder"):
        check_writable(tmp_path / "emb")
    monkeypatch.setattr("cafa_mlflow.io.text.os.fsync", failing(code))  # e.g. a full disk fails at sync
    with pytest.raises(
        OutputError, match=rf"^{tmp_path / 'new' / 'sub.tsv'}: cannot write \(.*{errno.errorcode[code]}"
    ):
        check_writable(tmp_path / "new" / "sub.tsv")
    assert snapshot(tmp_path) == {}


def test_write_fasta_on_full_disk_through_run_cli(tmp_path, monkeypatch, capsys):
    out = write(tmp_path / "copy.fasta", ">OLD\nMK\n")
    monkeypatch.setattr("cafa_mlflow.io.text.os.replace", failing(errno.ENOSPC))
    assert run_cli(lambda: write_fasta(out, [("A", "MKV")])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {out}: cannot write (no space left on the device, ENOSPC)")
    assert out.read_text() == ">OLD\nMK\n" and snapshot(tmp_path) == {"copy.fasta": b">OLD\nMK\n"}


@pytest.fixture
def tiny_fs(tmp_path):
    """A real 64 KiB tmpfs (needs root and mount rights; skipped elsewhere, the mocked tests cover it)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if not shutil.which("mount") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_real_full_disk(tiny_fs, capsys):
    old = write(tiny_fs / "out.fasta", ">OLD\nMK\n")
    records = [(f"P{i}", "M" * 1000) for i in range(200)]  # ~200 KB into 64 KiB
    assert run_cli(lambda: write_fasta(old, records)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {old}: cannot write (no space left on the device, ENOSPC)")
    assert snapshot(tiny_fs) == {"out.fasta": b">OLD\nMK\n"}
    with open(tiny_fs / "fill", "wb", buffering=0) as fill, pytest.raises(OSError):
        while True:  # fill the file system to the last page
            fill.write(b"x" * 4096)
    with pytest.raises(OutputError, match=rf"^{tiny_fs / 'sub.tsv'}: cannot write \(no space left"):
        check_writable(tiny_fs / "sub.tsv")


def test_real_read_only_folder(tiny_fs):
    write(tiny_fs / "out" / "sub.tsv", "old\n")
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], check=True)
    with pytest.raises(OutputError, match=r"sub.tsv: cannot write \(the file system is read-only, EROFS\)"):
        check_writable(tiny_fs / "out" / "sub.tsv")
    with pytest.raises(OutputError, match=r"sub.tsv: cannot write \(the file system is read-only"):
        with atomic_write(tiny_fs / "out" / "sub.tsv") as handle:
            handle.write("new\n")
    assert snapshot(tiny_fs) == {"out/sub.tsv": b"old\n"}


# ---- run_cli: what a user sees ----------------------------------------------------------------------


def test_run_cli_statuses(tmp_path, capsys):
    assert run_cli(lambda: None) == 0 and run_cli(lambda: 1) == 1 and run_cli(lambda: True) == 0

    def input_fault():
        raise InputError(f"{tmp_path}/x.fasta:3: bad line;\nfix it")

    assert run_cli(input_fault) == 2
    assert capsys.readouterr().err == f"error: {tmp_path}/x.fasta:3: bad line; fix it\n"

    def disk_full():
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "out.npz"))

    assert run_cli(disk_full) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'out.npz'}: No space left on device (ENOSPC)\n"

    def missing():
        open(tmp_path / "nope.txt")

    assert run_cli(missing) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope.txt'}: No such file or directory (ENOENT)\n"

    def ctrl_c():
        raise KeyboardInterrupt

    assert run_cli(ctrl_c) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("interrupted")

    def bug():
        return {}["missing key"]

    assert run_cli(bug) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and "KeyError: 'missing key'" in err and err.endswith(BUG_NOTE + "\n")

    def usage():
        raise SystemExit(2)  # argparse: its own message, its own status

    with pytest.raises(SystemExit):
        run_cli(usage)


def test_run_cli_mlflow_errors(tmp_path, capsys):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST

    def no_champion():
        raise MlflowException("Registered Model with name=cafa-go not found", error_code=RESOURCE_DOES_NOT_EXIST)

    assert run_cli(no_champion) == 2
    assert capsys.readouterr().err == "error: MLflow: Registered Model with name=cafa-go not found\n"

    def our_bug():
        raise MlflowException("Invalid value for param", error_code=INVALID_PARAMETER_VALUE)

    assert run_cli(our_bug) == 1
    assert capsys.readouterr().err.endswith(BUG_NOTE + "\n")


# ---- cafa stats on an empty FASTA ---------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "\n\n", "just some text\n"])
def test_stats_on_empty_fasta_is_an_error(tmp_path, text, capsys):
    fasta = tmp_path / "empty.fasta"
    fasta.write_text(text)
    terms, obo = write(tmp_path / "terms.tsv", TERMS_TSV), write(tmp_path / "go.obo", OBO)
    out = write(tmp_path / "out" / "stats.json", '{"old": 1}\n')
    mark_file(out)  # an earlier run's output (a user's file is refused before any reading)
    before = snapshot(tmp_path / "out")
    argv = ["stats", "--fasta", str(fasta), "--terms", str(terms), "--obo", str(obo), "--json", str(out)]
    argv += ["--plots", str(tmp_path / "out")]
    assert cafa(argv) == 2
    err = capsys.readouterr().err
    expected = (
        f"error: {fasta}: no FASTA records found; the file is empty or has no '>' header.\n"
        if text.strip() != "just some text"
        else f"error: {fasta}:1: sequence line before any '>' header; the file must start with a header.\n"
    )
    assert err == expected
    assert snapshot(tmp_path / "out") == before and before["stats.json"] == b'{"old": 1}\n'
