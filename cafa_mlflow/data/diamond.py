"""DIAMOND, the search tool that prepare's homology split and the homology members share: the executable,
databases cached by content hash (`<cache_dir>/diamond-<hash>/` with a manifest.json, so a DVC stage can version
it and a rebuild is skipped when nothing changed), and `search`, which returns typed hits."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from cafa_mlflow.data.hit_table import best_first, query_records, read_hits
from cafa_mlflow.errors import ConfigError, InputError, MissingToolError, ToolError
from cafa_mlflow.io import integrity
from cafa_mlflow.io.fasta import write_fasta
from cafa_mlflow.io.integrity import hash_file
from cafa_mlflow.io.text import atomic_dir, atomic_write

SENSITIVITIES = ("fast", "default", "mid-sensitive", "sensitive", "more-sensitive", "very-sensitive", "ultra-sensitive")
HIT_COLUMNS = ("qseqid", "sseqid", "pident", "evalue", "bitscore")
COVERAGE_COLUMNS = ("qcovhsp", "scovhsp")  # % of the query's / the target's length the best HSP covers
FEATURE_COLUMNS = ("qcovhsp", "qlen")  # what a search member's term features read (predictors/hit_features.py)


def hit_columns(*extra: Sequence[str]) -> tuple[str, ...]:
    """HIT_COLUMNS, then each column of the `extra` groups once (e.g. FEATURE_COLUMNS, COVERAGE_COLUMNS)."""
    return tuple(dict.fromkeys((*HIT_COLUMNS, *(c for group in extra for c in group))))


# DIAMOND 2.1 can deadlock in a futex wait (0% CPU, never ends) with several threads; a search that used no CPU
# for STALL_S is stuck, not slow (loading even a 500k-protein database keeps a core busy), so it is killed and
# started again, at most STALL_RETRIES times.
STALL_S = 60.0
STALL_POLL_S = 2.0
STALL_RETRIES = 1
# Queries per DIAMOND call. DIAMOND holds a whole query block's seeds and hits in memory: 224,309 queries against
# 82k proteins (--ultra-sensitive, every hit) passed 18 GB, one chunk of 20,000 took 2.56 GB
# (benchmarks/homology_chunk.py); the cost is indexing the database once per chunk.
QUERY_CHUNK = 20_000
INSTALL_HINT = (
    "install DIAMOND: `sudo apt-get install diamond-aligner` (Debian/Ubuntu) or "
    "`conda install -c bioconda diamond`, or set homology.executable to its path"
)
log = logging.getLogger(__name__)


def diamond_binary(executable: str = "diamond") -> str:
    """Full path of the DIAMOND executable; MissingToolError (with install advice) when absent."""
    path = shutil.which(executable)
    if path is None:
        raise MissingToolError(f"DIAMOND executable {executable!r} not found on PATH; {INSTALL_HINT}.")
    return path


def _cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, all threads) of a running process from /proc; None where /proc is absent."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14, 15


def _stalled(proc: subprocess.Popen, stall_s: float) -> bool:
    """Wait for `proc`; True (and the process killed) when it used no CPU for `stall_s` seconds."""
    last_cpu, last_change = _cpu_seconds(proc.pid), time.monotonic()
    try:
        while True:
            try:
                proc.wait(timeout=min(STALL_POLL_S, stall_s))
                return False
            except subprocess.TimeoutExpired:
                cpu = _cpu_seconds(proc.pid)
                if cpu is None or cpu != last_cpu:
                    last_cpu, last_change = cpu, time.monotonic()
                elif time.monotonic() - last_change >= stall_s:
                    return True
    finally:  # stalled, or interrupted (Ctrl-C): no DIAMOND is left running
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _run(cmd: list[str], what: str, stall_s: float = STALL_S) -> None:
    """Run DIAMOND; a run that stalls (no CPU for `stall_s`) is killed and started once more."""
    for attempt in range(1 + STALL_RETRIES):
        with tempfile.TemporaryFile("w+") as output:  # a file, not a pipe: nothing blocks on a full buffer
            proc = subprocess.Popen(cmd, stdout=output, stderr=subprocess.STDOUT, text=True)
            if _stalled(proc, stall_s):
                log.warning("%s used no CPU for %.0f s (try %d): killed", what, stall_s, attempt + 1)
                continue
            output.seek(0)
            if proc.returncode != 0:
                tail = output.read().strip().splitlines()[-5:]
                raise InputError(
                    f"{what} failed (exit {proc.returncode}): {' | '.join(tail)}; command: {' '.join(cmd)}"
                )
            return
    raise ToolError(
        f"{what} stalled {1 + STALL_RETRIES} times (no CPU for {stall_s:.0f} s each); run again with "
        f"homology.threads=1 / reference.threads=1, or update DIAMOND; command: {' '.join(cmd)}"
    )


def fasta_digest(fasta: str | os.PathLike, proteins: Iterable[str] | None = None) -> str:
    """sha256 of the file bytes, plus the sorted protein subset when one is given."""
    h = hash_file(hashlib.sha256(), fasta)
    if proteins is not None:
        h.update(b"\0subset\0" + "\n".join(sorted(set(proteins))).encode())
    return h.hexdigest()


def build_db(
    fasta: str | os.PathLike,
    cache_dir: str | os.PathLike,
    proteins: Sequence[str] | None = None,
    threads: int = 1,
    executable: str = "diamond",
) -> Path:
    """DIAMOND database of `fasta` (optionally only `proteins`), cached by content hash.

    Returns the `.dmnd` path. Built in a temporary directory and moved into place, so a failed build
    leaves no half-written cache; a cache folder that is incomplete or damaged is named and built again."""
    binary = diamond_binary(executable)
    digest = fasta_digest(fasta, proteins)
    out_dir = Path(cache_dir) / f"diamond-{digest[:16]}"
    db = out_dir / "train.dmnd"
    if integrity.reusable_cache(out_dir, ("train.dmnd", "manifest.json")):  # whole and as written: reused
        return db
    records = query_records(fasta, proteins)
    with atomic_dir(out_dir) as tmp:  # replaces a partial cache without manifest only on success
        plain = tmp / "train.fasta"
        write_fasta(plain, records)
        make_db(plain, tmp / "train", threads, binary, f"diamond makedb on {fasta}")
        plain.unlink()
        manifest = {
            "source": str(fasta),
            "sha256": digest,
            "n_sequences": len(records),
            "subset": proteins is not None,
            "diamond": _version(binary),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return db


def make_db(fasta: Path, db: Path, threads: int, binary: str, what: str) -> Path:
    """`diamond makedb` of a FASTA as written by io.fasta.write_fasta (`db`.dmnd; `binary`: diamond_binary's path);
    returns the database path."""
    _run([binary, "makedb", "--in", str(fasta), "-d", str(db), "--threads", str(max(threads, 1)), "--quiet"], what)
    return db.with_suffix(".dmnd")


def copy_atomic(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    with open(src, "rb") as source, atomic_write(dst, "wb") as target:
        shutil.copyfileobj(source, target)


def _version(binary: str) -> str:
    proc = subprocess.run([binary, "version"], capture_output=True, text=True)
    return proc.stdout.strip()


def _blastp_command(
    binary: str,
    db: str | os.PathLike,
    queries: Path,
    out: Path,
    tmp: str,
    sensitivity: str,
    evalue: float,
    max_target_seqs: int,
    threads: int,
    columns: Sequence[str] = HIT_COLUMNS,
) -> list[str]:
    """The `diamond blastp` command line: best HSP per pair, tabular `columns`, quiet."""
    cmd = [
        binary,
        "blastp",
        "-d",
        str(db),
        "-q",
        str(queries),
        "-o",
        str(out),
        "-e",
        str(evalue),
        "--max-target-seqs",
        str(max_target_seqs),
        "--max-hsps",
        "1",
        "--threads",
        str(max(threads, 1)),
        "--tmpdir",
        tmp,
        "--quiet",
        "--outfmt",
        "6",
        *columns,
    ]
    if sensitivity != "default":
        cmd.append(f"--{sensitivity}")
    return cmd


def search(
    db: str | os.PathLike,
    queries: str | os.PathLike,
    ids: Sequence[str] | None = None,
    sensitivity: str = "sensitive",
    evalue: float = 1e-3,
    max_target_seqs: int = 25,
    threads: int = 1,
    executable: str = "diamond",
    out: str | os.PathLike | None = None,
    columns: Sequence[str] = HIT_COLUMNS,
) -> pd.DataFrame:
    """Run `diamond blastp` of `queries` (a FASTA; only `ids` when given) against `db`; max_target_seqs
    0 = every hit passing `evalue`.

    Returns hits with `columns` (HIT_COLUMNS: qseqid, sseqid, pident, evalue, bitscore; more DIAMOND columns,
    e.g. COVERAGE_COLUMNS, after them), one row per query-target pair, best HSP. `out` keeps the raw
    tab-separated hits file (written atomically)."""
    if sensitivity not in SENSITIVITIES:
        raise ConfigError(f"homology.sensitivity={sensitivity!r}: use one of {', '.join(SENSITIVITIES)}.")
    binary = diamond_binary(executable)
    records = query_records(queries, ids)
    with tempfile.TemporaryDirectory(prefix="cafa-diamond-") as tmp:
        plain, part, hits_path = Path(tmp) / "queries.fasta", Path(tmp) / "part.tsv", Path(tmp) / "hits.tsv"
        cmd = _blastp_command(binary, db, plain, part, tmp, sensitivity, evalue, max_target_seqs, threads, columns)
        with open(hits_path, "wb") as hits_file:
            for start in range(0, max(len(records), 1), QUERY_CHUNK):
                chunk = records[start : start + QUERY_CHUNK]
                write_fasta(plain, chunk)
                where = (
                    f" (queries {start + 1}-{start + len(chunk)} of {len(records)})"
                    if len(records) > QUERY_CHUNK
                    else ""
                )
                _run(cmd, f"diamond blastp of {queries}{where}")
                with open(part, "rb") as found:
                    shutil.copyfileobj(found, hits_file)
        hits = read_hits(hits_path, columns)
        if out is not None:
            copy_atomic(hits_path, out)
    return best_first(hits)
