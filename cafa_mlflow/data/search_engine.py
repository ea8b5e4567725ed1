"""Which aligner a homology or reference member searches with (`<block>.engine` in params.yaml): DIAMOND (its
`.dmnd` database, read and seeded on every call) or MMseqs2 (an index built once from that database and
memory-mapped on every call, `data.mmseqs`). Both return the same hit table; the choice is saved with the member,
so the chain, `cafa predict` and the served model search with the same engine and settings."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cafa_mlflow.data import diamond, mmseqs
from cafa_mlflow.errors import ConfigError

ENGINES = ("diamond", "mmseqs2")
INDEX_CACHE = "mmseqs"  # subfolder of the user cache (go.ontology_cache.cache_dir) for loaded models' indexes


@dataclass(frozen=True)
class SearchEngine:
    """An engine and its MMseqs2 settings (DIAMOND's own, `sensitivity` and `executable`, stay the block's)."""

    engine: str = "diamond"
    mmseqs_sensitivity: float = 5.7
    mmseqs_max_seqs: int = 300
    mmseqs_executable: str = "mmseqs"

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"engine={self.engine!r}: use one of {', '.join(ENGINES)}.")

    @classmethod
    def from_block(cls, block: Any) -> SearchEngine:
        """From a HomologyParams / ReferenceParams block."""
        return cls(block.engine, float(block.mmseqs_sensitivity), int(block.mmseqs_max_seqs), block.mmseqs_executable)

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> SearchEngine:
        """From a saved member's config.json entry; DIAMOND for members saved before the setting."""
        return cls(**(config or {}))

    def to_config(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def builds_index(self) -> bool:
        """Whether `prepare` builds something of its own (MMseqs2's database and k-mer index); DIAMOND searches the
        `.dmnd` database as it is."""
        return self.engine != "diamond"

    def prepare(
        self,
        dmnd: str | os.PathLike,
        cache_dir: str | os.PathLike | None,
        threads: int,
        diamond_exe: str,
        index: bool = True,
    ) -> Path:
        """What `search` searches: the DIAMOND database itself, or the MMseqs2 database built from it, with its
        k-mer index when `index` (for few queries; the hits are the same), cached in `cache_dir` (the user cache
        when None)."""
        if not self.builds_index:
            return Path(dmnd)
        where = Path(cache_dir) if cache_dir is not None else user_index_cache()
        sens, exe = self.mmseqs_sensitivity, self.mmseqs_executable
        return mmseqs.build_index(dmnd, where, sens, threads, exe, diamond_exe, index)

    def search(
        self,
        db: str | os.PathLike,
        queries: str | os.PathLike,
        ids: Sequence[str] | None,
        sensitivity: str,
        evalue: float,
        max_target_seqs: int,
        threads: int,
        diamond_exe: str,
        columns: Sequence[str] = diamond.HIT_COLUMNS,
    ) -> pd.DataFrame:
        """Hits with `columns` (DIAMOND's names: qseqid, sseqid, pident, evalue, bitscore, then e.g. qcovhsp, qlen;
        best first) of `queries` against `db` (`prepare`); max_target_seqs 0 = all that pass `evalue` (MMseqs2: at
        most mmseqs_max_seqs)."""
        if self.engine == "diamond":
            return diamond.search(
                db, queries, ids, sensitivity, evalue, max_target_seqs, threads, diamond_exe, columns=columns
            )
        sens, most, exe = self.mmseqs_sensitivity, self.mmseqs_max_seqs, self.mmseqs_executable
        hits = mmseqs.search(db, queries, ids, sens, evalue, most, threads, exe, columns=columns)
        if max_target_seqs:
            hits = hits[hits.groupby("qseqid", sort=False).cumcount() < max_target_seqs].reset_index(drop=True)
        return hits


def user_index_cache() -> Path:
    """Where loaded models keep their MMseqs2 indexes: `<user cache>/mmseqs` (`$CAFA_CACHE_DIR`, else
    `$XDG_CACHE_HOME/cafa-mlflow`, else `~/.cache/cafa-mlflow`); a temporary folder with `CAFA_CACHE_DIR=off`."""
    from cafa_mlflow.go.ontology_cache import cache_dir

    base = cache_dir()
    return base / INDEX_CACHE if base is not None else Path(tempfile.mkdtemp(prefix="cafa-mmseqs-index-"))


def user_index_cache_on() -> bool:
    """Whether loaded models share their MMseqs2 indexes in the user cache (not with `CAFA_CACHE_DIR=off`)."""
    from cafa_mlflow.go.ontology_cache import cache_dir

    return cache_dir() is not None
