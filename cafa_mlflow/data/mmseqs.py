"""MMseqs2, the search engine for few queries against a large database: its target database and precomputed k-mer
index are built from a member's DIAMOND database (`diamond getseq`, so the chain, `cafa predict` and the served
model search the very same sequences) and cached by content hash (`<cache_dir>/mmseqs-<hash>/`, sealed like every
cache); `search` returns the hit table of `data.diamond.search` (qseqid, sseqid, pident, evalue, bitscore).

With the index on disk and `--db-load-mode 2` (memory-mapped, kept in the page cache between calls), one query
against the 516k-protein reference takes a fraction of a second, where DIAMOND reads and seeds the whole
database on every call (benchmarks/RESULTS.md, "Search engines")."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from cafa_mlflow.data.diamond import HIT_COLUMNS, copy_atomic, diamond_binary
from cafa_mlflow.data.hit_table import best_first, query_records, read_hits
from cafa_mlflow.errors import InputError, MissingToolError
from cafa_mlflow.io import integrity
from cafa_mlflow.io.integrity import hash_file, stamp
from cafa_mlflow.io.text import atomic_dir
from cafa_mlflow.io.fasta import write_fasta

# DIAMOND's output column names (what callers ask for) -> MMseqs2's; pident in % in both, MMseqs2's coverages are
# fractions (scaled to DIAMOND's % below)
NAMES = {
    "qseqid": "query",
    "sseqid": "target",
    "pident": "pident",
    "evalue": "evalue",
    "bitscore": "bits",
    "qcovhsp": "qcov",
    "scovhsp": "tcov",
    "qlen": "qlen",
    "slen": "tlen",
}
FRACTIONS = ("qcovhsp", "scovhsp")
TARGETS = "targets"  # the MMseqs2 database's name inside its cache folder
DB_FILES = (TARGETS, f"{TARGETS}.index", f"{TARGETS}.dbtype", "manifest.json")
INDEX_FILES = (*DB_FILES, f"{TARGETS}.idx")
LAYOUT = 1  # bump when the cache folder's content changes
INSTALL_HINT = (
    "install MMseqs2: `sudo apt-get install mmseqs2` (Debian/Ubuntu) or `conda install -c bioconda mmseqs2`, "
    "or set {block}.mmseqs_executable to its path (or {block}.engine: diamond)"
)


def mmseqs_binary(executable: str = "mmseqs", block: str = "reference") -> str:
    """Full path of the MMseqs2 executable; MissingToolError (one line naming what to install) when absent."""
    path = shutil.which(executable)
    if path is None:
        raise MissingToolError(
            f"MMseqs2 executable {executable!r} not found on PATH; {INSTALL_HINT.format(block=block)}."
        )
    return path


def _run(cmd: list[str], what: str) -> None:
    """Run an MMseqs2 command; InputError with its last words when it fails. (No stall watchdog as for DIAMOND:
    MMseqs2's workflows run their steps as child processes while the parent waits.)"""
    with tempfile.TemporaryFile("w+") as output:  # a file, not a pipe: nothing blocks on a full buffer
        proc = subprocess.run(cmd, stdout=output, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            output.seek(0)
            tail = output.read().strip().splitlines()[-5:]
            raise InputError(f"{what} failed (exit {proc.returncode}): {' | '.join(tail)}; command: {' '.join(cmd)}")


def _version(binary: str) -> str:
    return subprocess.run([binary, "version"], capture_output=True, text=True).stdout.strip()


_KEYS: dict[tuple, str] = {}  # index_key per (arguments, files' stamps): the reference member is fitted 5 times a step


def index_key(dmnd: str | os.PathLike, sensitivity: float, binary: str, index: bool = True) -> str:
    """Content hash of the DIAMOND database, the index's sensitivity (with `index`) and the MMseqs2 version
    (hashed once per process while the database's and the executable's size and modification time stay the same)."""
    memo = (stamp(dmnd), stamp(binary), sensitivity if index else None)
    if memo not in _KEYS:
        h = hash_file(hashlib.sha256(), dmnd)
        h.update(f"\0mmseqs\0{LAYOUT}\0{sensitivity if index else 'no index'}\0{_version(binary)}".encode())
        _KEYS[memo] = h.hexdigest()
    return _KEYS[memo]


def _targets_fasta(dmnd: Path, out: Path, diamond: str) -> int:
    """The sequences of a DIAMOND database as FASTA (upper case: getseq prints masked residues in lower case), in
    database order; returns how many."""
    with tempfile.TemporaryFile("w+") as raw:
        subprocess.run(
            [diamond, "getseq", "-d", str(dmnd)], stdout=raw, stderr=subprocess.DEVNULL, check=True, text=True
        )
        raw.seek(0)
        records, name, parts = [], None, []
        for line in raw:
            if line.startswith(">"):
                if name is not None:
                    records.append((name, "".join(parts).upper()))
                name, parts = line[1:].split()[0], []
            else:
                parts.append(line.strip())
        if name is not None:
            records.append((name, "".join(parts).upper()))
    write_fasta(out, records)
    return len(records)


def build_index(
    dmnd: str | os.PathLike,
    cache_dir: str | os.PathLike,
    sensitivity: float,
    threads: int = 1,
    executable: str = "mmseqs",
    diamond: str = "diamond",
    index: bool = True,
) -> Path:
    """The MMseqs2 database of the sequences in DIAMOND database `dmnd` with its k-mer index (`index`: what few
    queries need; a search without it builds the k-mer table on the fly, 7 CPU s for the 16k-protein pool at
    -s 7.5, and finds the same hits), cached in `<cache_dir>/mmseqs-<hash>/`; returns the database path to pass
    to `search` (reused when whole)."""
    binary = mmseqs_binary(executable)
    key = index_key(dmnd, sensitivity, binary, index)
    folder = Path(cache_dir) / f"mmseqs-{key[:16]}"
    if integrity.reusable_cache(folder, INDEX_FILES if index else DB_FILES):
        return folder / TARGETS
    with atomic_dir(folder) as tmp:
        fasta = tmp / "targets.fasta"
        n = _targets_fasta(Path(dmnd), fasta, diamond_binary(diamond))
        db, work = tmp / TARGETS, tmp / "work"
        threads_arg = ["--threads", str(max(threads, 1)), "-v", "1"]
        _run([binary, "createdb", str(fasta), str(db), "-v", "1"], f"mmseqs createdb of {dmnd}")
        if index:
            _run(
                [binary, "createindex", str(db), str(work), "-s", str(sensitivity), *threads_arg],
                f"mmseqs createindex of {dmnd}",
            )
        fasta.unlink()
        shutil.rmtree(work, ignore_errors=True)
        manifest = {
            "source": str(dmnd),
            "sha256": key,
            "n_sequences": n,
            "sensitivity": sensitivity,
            "index": index,
            "mmseqs": _version(binary),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return folder / TARGETS


def _search_command(
    binary: str,
    db: Path,
    queries: Path,
    out: Path,
    tmp: Path,
    sensitivity: float,
    evalue: float,
    max_seqs: int,
    threads: int,
    columns: Sequence[str] = HIT_COLUMNS,
) -> list[str]:
    """`mmseqs easy-search` with the index memory-mapped (--db-load-mode 2: the page cache keeps it warm)."""
    return [
        binary,
        "easy-search",
        str(queries),
        str(db),
        str(out),
        str(tmp / "work"),
        "-s",
        str(sensitivity),
        "-e",
        str(evalue),
        "--max-seqs",
        str(max_seqs),
        "--db-load-mode",
        "2",
        "--threads",
        str(max(threads, 1)),
        "--format-output",
        ",".join(NAMES[c] for c in columns),
        "-v",
        "1",
    ]


def search(
    db: str | os.PathLike,
    queries: str | os.PathLike,
    ids: Sequence[str] | None = None,
    sensitivity: float = 5.7,
    evalue: float = 1e-3,
    max_seqs: int = 300,
    threads: int = 1,
    executable: str = "mmseqs",
    out: str | os.PathLike | None = None,
    columns: Sequence[str] = HIT_COLUMNS,
) -> pd.DataFrame:
    """Search `queries` (a FASTA; only `ids` when given) against the indexed database `db` (`build_index`).

    Returns hits with `columns` (DIAMOND's names, see NAMES; HIT_COLUMNS first), one row per query-target pair, best
    bitscore first; at most `max_seqs` targets per query (MMseqs2's prefilter keeps that many). A query's hits
    do not depend on the other queries of the call. `out` keeps the raw tab-separated hits file."""
    binary = mmseqs_binary(executable)
    records = query_records(queries, ids)
    with tempfile.TemporaryDirectory(prefix="cafa-mmseqs-") as tmp:
        plain, hits_path = Path(tmp) / "queries.fasta", Path(tmp) / "hits.tsv"
        write_fasta(plain, records)
        cmd = _search_command(
            binary, Path(db), plain, hits_path, Path(tmp), sensitivity, evalue, max_seqs, threads, columns
        )
        _run(cmd, f"mmseqs easy-search of {queries}")
        hits = read_hits(hits_path, columns)
        for c in FRACTIONS:
            if c in hits:
                hits[c] = hits[c] * 100.0  # DIAMOND's %
        if out is not None:
            copy_atomic(hits_path, out)
    return best_first(hits)
