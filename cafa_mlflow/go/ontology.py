"""OBO ontology with namespaces: is_a/part_of DAG, alt_id mapping, ancestor closure, propagation.

Reads an OBO file as the CAFA-evaluator does (cafa_mlflow.go.obo), through a cache keyed by the file's
content (cafa_mlflow.go.ontology_cache). Works on any OBO ontology with namespaces; GO's three get the
CAFA aspect names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from cafa_mlflow.errors import InputError
from cafa_mlflow.go import ontology_cache
from cafa_mlflow.go.obo import ASPECT_OF_NAMESPACE, RELATIONS, parse_obo
from cafa_mlflow.go.propagate import PlanCache, propagate_max

ASPECTS = ("BPO", "CCO", "MFO")
ASPECT_OF_LETTER = {"P": "BPO", "C": "CCO", "F": "MFO"}
LETTER_OF_ASPECT = {v: k for k, v in ASPECT_OF_LETTER.items()}
__all__ = [
    "ASPECTS",
    "ASPECT_OF_LETTER",
    "ASPECT_OF_NAMESPACE",
    "LETTER_OF_ASPECT",
    "RELATIONS",
    "Ontology",
    "load_obo",
]


@dataclass
class Ontology:
    """Live terms in file order, their aspect (namespace), parent edges and alt_id map."""

    terms: list[str]
    aspect: np.ndarray
    parents: sp.csr_matrix  # T x T, [i, j] = 1 when j is a direct parent of i
    alt_ids: dict[str, str] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    obsolete: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self.index = {t: i for i, t in enumerate(self.terms)}

    def __len__(self) -> int:
        return len(self.terms)

    def resolve(self, term_id: str) -> str | None:
        """Primary id of a live term or alt_id; None for obsolete or unknown ids."""
        if term_id in self.index:
            return term_id
        return self.alt_ids.get(term_id)

    @property
    def aspects(self) -> list[str]:
        """Aspects (namespaces) present, GO's in CAFA order first."""
        present = list(dict.fromkeys(self.aspect.tolist()))
        return [a for a in ASPECTS if a in present] + sorted(a for a in present if a not in ASPECTS)

    def roots(self, aspect: str | None = None) -> list[str]:
        has_parent = np.diff(self.parents.indptr) > 0
        mask = ~has_parent if aspect is None else (~has_parent & (self.aspect == aspect))
        return [self.terms[i] for i in np.flatnonzero(mask)]

    @cached_property
    def ancestors(self) -> sp.csr_matrix:
        """T x T boolean closure: row i holds i and every ancestor of i (computed once, by squaring)."""
        closure = (sp.identity(len(self.terms), dtype=bool, format="csr") + self.parents).astype(bool).tocsr()
        while True:
            nxt = (closure @ closure).astype(bool).tocsr()
            if nxt.nnz == closure.nnz:
                nxt.sort_indices()
                return nxt
            closure = nxt

    def ancestors_of(self, term_id: str) -> list[str]:
        row = self.ancestors[self.index[term_id]]
        return [self.terms[j] for j in row.indices]

    def propagate(self, labels: sp.spmatrix) -> sp.csr_matrix:
        """Boolean propagation of an N x T label matrix (over `self.terms`) to all ancestors."""
        labels = sp.csr_matrix(labels, dtype=bool, copy=True)
        labels.eliminate_zeros()  # stored zeros must not turn into labels below
        out = (labels.astype(np.float32) @ self._ancestors_f32).tocsr()
        out.data[:] = 1.0
        return out

    @cached_property
    def _ancestors_f32(self) -> sp.csr_matrix:
        return self.ancestors.astype(np.float32)

    @cached_property
    def plan_cache(self) -> PlanCache:
        """Propagation plans in use with this ontology (see cafa_mlflow.go.propagate.propagation_plan)."""
        return PlanCache(self)

    def propagate_max(self, scores: sp.spmatrix, block_rows: int = 4096) -> sp.csr_matrix:
        """Each term takes the max score of itself and its descendants (CAFA's `prop='max'`).

        Scores are non-negative, N x T over `self.terms`; stored zeros are no prediction, repeated cells
        keep their max. At most `block_rows` rows are propagated at a time (see cafa_mlflow.go.propagate)."""
        return propagate_max(self, scores, block_rows)


def load_obo(path: str | os.PathLike) -> Ontology:
    """Parse an OBO file into an Ontology (obsolete terms dropped, alt_ids mapped; see cafa_mlflow.go.obo
    for what is read and what is an error). A parsed file is cached by its content hash
    (cafa_mlflow.go.ontology_cache), so every later load of the same bytes skips parsing."""
    if not Path(path).is_file():
        raise InputError(f"{path}: file not found; check the path (and params.yaml's data block).")
    digest = ontology_cache.file_digest(path)
    cached = ontology_cache.load(digest)
    fields = cached if cached is not None else vars(parse_obo(path))
    ontology = Ontology(
        fields["terms"],
        np.array(fields["aspect"], dtype=object),
        fields["parents"],
        fields["alt_ids"],
        fields["names"],
        fields["obsolete"],
    )
    if cached is not None:
        ontology.__dict__["ancestors"] = cached["ancestors"]  # the cached_property's value
    else:
        ontology_cache.save(digest, {**fields, "ancestors": ontology.ancestors})
    return ontology
