"""On-disk cache of parsed ontologies, keyed by the SHA-256 of the OBO file's bytes (never by name or date).

One `.npz` per content hash (numpy arrays only, loaded with allow_pickle=False), written atomically, in
`$CAFA_CACHE_DIR` or else `$XDG_CACHE_HOME/cafa-mlflow` or else `~/.cache/cafa-mlflow`;
`CAFA_CACHE_DIR=off` turns it off. The file stores its own hash and format version and is used only
when both match, so a changed OBO file gets a new entry and an entry is never used for other content.
A cache that cannot be read or written is skipped with a debug log: it only ever saves time.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from cafa_mlflow.errors import OutputError
from cafa_mlflow.io.readback import CORRUPT
from cafa_mlflow.io.text import atomic_write

log = logging.getLogger(__name__)
ENV = "CAFA_CACHE_DIR"
FORMAT = 1  # bump when the parser or the stored fields change: old entries are then ignored
SEP = "\n"


def cache_dir() -> Path | None:
    """The cache folder, or None when `CAFA_CACHE_DIR=off`."""
    chosen = os.environ.get(ENV)
    if chosen:
        return None if chosen.lower() == "off" else Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cafa-mlflow"


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of the file's bytes (compressed files: of the compressed bytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def entry_path(digest: str) -> Path | None:
    folder = cache_dir()
    return None if folder is None else folder / f"ontology-v{FORMAT}-{digest}.npz"


def _join(items) -> np.ndarray:
    return np.frombuffer(SEP.join(items).encode(), dtype=np.uint8)


def _split(array: np.ndarray, count: int = 1) -> list[str]:
    return array.tobytes().decode().split(SEP) if count else []


def save(digest: str, fields: dict) -> None:
    """Store an ontology's fields (terms, aspect, names, parents, ancestors, alt_ids, obsolete)."""
    path = entry_path(digest)
    if path is None:
        return
    parents, ancestors = fields["parents"], fields["ancestors"]
    arrays = {
        "format": np.array([FORMAT]),
        "counts": np.array([len(fields["terms"]), len(fields["alt_ids"]), len(fields["obsolete"])]),
        "digest": _join([digest]),
        "terms": _join(fields["terms"]),
        "aspect": _join(fields["aspect"]),
        "names": _join(fields["names"]),
        "parents_indptr": parents.indptr,
        "parents_indices": parents.indices,
        "ancestors_indptr": ancestors.indptr,
        "ancestors_indices": ancestors.indices,
        "alt_keys": _join(fields["alt_ids"].keys()),
        "alt_values": _join(fields["alt_ids"].values()),
        "obsolete": _join(sorted(fields["obsolete"])),
    }
    try:
        with atomic_write(path, "wb") as out:
            np.savez(out, **arrays)
    except (OSError, OutputError) as error:  # a cache that cannot be written only costs time
        log.debug("ontology cache not written (%s): %s", path, error)


def load(digest: str) -> dict | None:
    """The fields stored for this content hash, or None (no entry, other format, unreadable)."""
    path = entry_path(digest)
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["format"][0]) != FORMAT or _split(z["digest"]) != [digest]:
                return None
            n, n_alt, n_obsolete = (int(c) for c in z["counts"])
            terms = _split(z["terms"], n)

            def matrix(name: str) -> sp.csr_matrix:
                indices = z[f"{name}_indices"]
                return sp.csr_matrix((np.ones(len(indices), bool), indices, z[f"{name}_indptr"]), shape=(n, n))

            return {
                "terms": terms,
                "aspect": _split(z["aspect"], n),
                "names": _split(z["names"], n),
                "parents": matrix("parents"),
                "ancestors": matrix("ancestors"),
                "alt_ids": dict(zip(_split(z["alt_keys"], n_alt), _split(z["alt_values"], n_alt))),
                "obsolete": frozenset(_split(z["obsolete"], n_obsolete)),
            }
    except (*CORRUPT, OSError, KeyError) as error:  # io.readback's list of what damaged files raise
        log.debug("ontology cache entry %s unusable, rebuilding: %s", path, error)
        return None
