"""OBO ontology with namespaces: is_a/part_of DAG, alt_id mapping, cached ancestor closure, propagation.

Follows the CAFA-evaluator's reading of an OBO file: only `[Term]` stanzas with a namespace, obsolete
terms dropped, edges `is_a` and `relationship: part_of` kept only when the parent is a live term of the
same namespace. Works on any OBO ontology with namespaces; GO's three get the CAFA aspect names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from cafa_mlflow.errors import InputError
from cafa_mlflow.go.propagate import MaxPropagator
from cafa_mlflow.io.text import open_text

ASPECTS = ("BPO", "CCO", "MFO")
ASPECT_OF_NAMESPACE = {"biological_process": "BPO", "cellular_component": "CCO", "molecular_function": "MFO"}
ASPECT_OF_LETTER = {"P": "BPO", "C": "CCO", "F": "MFO"}
LETTER_OF_ASPECT = {v: k for k, v in ASPECT_OF_LETTER.items()}
RELATIONS = ("is_a", "part_of")


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
    def max_propagator(self) -> MaxPropagator:
        """Shared max-propagator (caches its level plans per vocabulary in use)."""
        return MaxPropagator(self)

    def propagate_max(self, scores: sp.spmatrix, block_rows: int = 4096) -> sp.csr_matrix:
        """Each term takes the max score of itself and its descendants (CAFA's `prop='max'`).

        Scores are non-negative, N x T over `self.terms`; stored zeros are no prediction, repeated cells
        keep their max. At most `block_rows` rows are propagated at a time (see cafa_mlflow.go.propagate)."""
        return self.max_propagator(scores, block_rows)


def _parse_stanzas(path: str | os.PathLike):
    """Yield dicts of a [Term] stanza's tags; also return the header's default-namespace."""
    stanza: dict | None = None
    header_ns = None
    with open_text(path) as handle:
        for line_no, raw in enumerate(handle, 1):
            line = raw.strip()
            if line.startswith("["):
                if stanza is not None:
                    yield stanza
                stanza = {"_line": line_no, "alt_id": [], "rel": []} if line == "[Term]" else None
                continue
            if ": " not in line:
                continue
            key, value = line.split(": ", 1)
            if stanza is None:
                if key == "default-namespace":
                    header_ns = value.strip()
                    yield {"_default_namespace": header_ns}
                continue
            value = value.split(" !")[0].strip()
            if key in ("id", "namespace", "name"):
                stanza[key] = value
            elif key == "is_obsolete":
                stanza["obsolete"] = value == "true"
            elif key == "alt_id":
                stanza["alt_id"].append(value)
            elif key == "is_a" and "is_a" in RELATIONS:
                stanza["rel"].append(value.split()[0])
            elif key == "relationship":
                rel, target = value.split()[:2]
                if rel in RELATIONS:
                    stanza["rel"].append(target)
    if stanza is not None:
        yield stanza


def load_obo(path: str | os.PathLike) -> Ontology:
    """Parse an OBO file into an Ontology (obsolete terms dropped, alt_ids mapped)."""
    default_ns = None
    live, obsolete = [], set()
    for stanza in _parse_stanzas(path):
        if "_default_namespace" in stanza:
            default_ns = stanza["_default_namespace"]
            continue
        if "id" not in stanza:
            raise InputError(f"{path}:{stanza['_line']}: [Term] stanza without an 'id:' line; fix or remove it.")
        stanza.setdefault("namespace", default_ns)
        if stanza.get("obsolete"):
            obsolete.add(stanza["id"])
        elif stanza["namespace"] is not None and stanza["namespace"] != "external":
            live.append(stanza)
    if not live:
        raise InputError(f"{path}: no live [Term] stanza with a namespace; is this an OBO ontology file?")
    terms = [s["id"] for s in live]
    index = {t: i for i, t in enumerate(terms)}
    aspect = np.array([ASPECT_OF_NAMESPACE.get(s["namespace"], s["namespace"]) for s in live], dtype=object)
    rows, cols = [], []
    for i, s in enumerate(live):
        for parent in s["rel"]:
            j = index.get(parent)
            if j is not None and aspect[j] == aspect[i] and j != i:
                rows.append(i)
                cols.append(j)
    parents = sp.csr_matrix((np.ones(len(rows), dtype=bool), (rows, cols)), shape=(len(terms), len(terms)))
    alt_ids = {alt: s["id"] for s in live for alt in s["alt_id"] if alt not in index}
    return Ontology(
        terms, aspect, parents, alt_ids, [s.get("name", "") for s in live], frozenset(obsolete - set(alt_ids))
    )
