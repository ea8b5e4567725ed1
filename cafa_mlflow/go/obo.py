"""OBO text -> the arrays of an ontology, read as the CAFA-evaluator reads it, with the file checked.

Only `[Term]` stanzas with a namespace count, obsolete terms are dropped, edges `is_a` and
`relationship: part_of` are kept only when the parent is a live term of the same namespace. Errors
(InputError, naming the line or term): a file whose last line is cut (no end of line), a `[Term]`
without an id, a term without a namespace in an ontology whose terms carry namespaces, a parent that
no stanza defines, a cycle of is_a/part_of edges (`find_cycle`).
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from cafa_mlflow.errors import InputError
from cafa_mlflow.io.text import open_text

RELATIONS = ("is_a", "part_of")
ASPECT_OF_NAMESPACE = {"biological_process": "BPO", "cellular_component": "CCO", "molecular_function": "MFO"}
_TAG = re.compile(r"\n(?:(\[[^\]\n]*\])|(id|name|namespace|is_obsolete|alt_id|is_a|relationship): *([^\n]*))")


@dataclass
class ParsedObo:
    """Live terms in file order with their aspect, name and parent edges (indices), alt_ids, obsolete ids."""

    terms: list[str]
    aspect: list[str]
    names: list[str]
    parents: sp.csr_matrix
    alt_ids: dict[str, str]
    obsolete: frozenset[str]


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def parse_obo(path: str | os.PathLike) -> ParsedObo:
    """Parse and check an OBO file (plain, .gz or .xz)."""
    with open_text(path) as handle:
        text = handle.read()
    if text and not text.endswith("\n"):
        raise InputError(
            f"{path}:{_line_of(text, len(text))}: the last line is cut (no end of line); the file looks truncated, "
            "download it again."
        )
    first = re.search(r"^\[", text, re.M)
    default_ns = re.search(r"^default-namespace: *(\S+)", text[: first.start() if first else len(text)], re.M)
    default_ns = default_ns.group(1) if default_ns else None
    live, obsolete, without_ns, defined = [], set(), [], set()
    term: dict | None = None
    n_terms = 0
    for stanza, key, value in _TAG.findall("\n" + text) + [("[End]", "", "")]:
        if stanza:
            if term is not None:
                _close(path, text, term, default_ns, live, obsolete, without_ns, defined)
            if stanza == "[Term]":
                term, n_terms = _new_term(n_terms), n_terms + 1
            else:
                term = None
        elif term is None:
            continue
        elif key in ("id", "namespace", "name"):
            term[key] = value.split(" !")[0].strip()
        elif key == "is_obsolete":
            term["obsolete"] = value.strip() == "true"
        elif key == "alt_id":
            term["alt_id"].append(value.split(" !")[0].strip())
        elif key == "is_a":
            term["rel"].append(value.split()[0])
        else:  # relationship: <type> <target>
            rel = value.split()
            if len(rel) >= 2 and rel[0] in RELATIONS:
                term["rel"].append(rel[1])
    if without_ns and len(without_ns) < len(defined):
        bad = without_ns[0]
        raise InputError(
            f"{path}:{_stanza_line(text, bad)}: term {bad['id']} has no 'namespace:' line while the other "
            f"terms have one ({len(without_ns)} such terms); the file may be cut off - fix or download it again."
        )
    if not live:
        raise InputError(f"{path}: no live [Term] stanza with a namespace; is this an OBO ontology file?")
    return _build(path, live, defined, obsolete)


def _new_term(n: int) -> dict:
    return {"n": n, "id": None, "namespace": None, "name": "", "obsolete": False, "alt_id": [], "rel": []}


def _close(path, text: str, term: dict, default_ns, live: list, obsolete: set, without_ns: list, defined: set) -> None:
    """File a finished [Term] stanza."""
    if term["id"] is None:
        raise InputError(f"{path}:{_stanza_line(text, term)}: [Term] stanza without an 'id:' line; fix or remove it.")
    defined.add(term["id"])
    if term["namespace"] is None:
        without_ns.append(term)
        term["namespace"] = default_ns
    if term["obsolete"]:
        obsolete.add(term["id"])
    elif term["namespace"] is not None and term["namespace"] != "external":
        live.append(term)


def _stanza_line(text: str, term: dict) -> int:
    """Line of a stanza's `[Term]` header (only looked up for an error message)."""
    headers = re.finditer(r"^\[Term\]", text, re.M)
    return _line_of(text, next(itertools.islice(headers, term["n"], None)).start())


def _build(path, live: list[dict], defined: set[str], obsolete: set[str]) -> ParsedObo:
    terms = [t["id"] for t in live]
    index = {t: i for i, t in enumerate(terms)}
    aspect = [ASPECT_OF_NAMESPACE.get(t["namespace"], t["namespace"]) for t in live]
    rows, cols = [], []
    for i, t in enumerate(live):
        for parent in t["rel"]:
            if parent not in defined:
                raise InputError(
                    f"{path}: term {t['id']} names parent {parent}, which no [Term] stanza defines; "
                    "the file may be incomplete - fix or download it again."
                )
            j = index.get(parent)
            if j is not None and j != i and aspect[j] == aspect[i]:
                rows.append(i)
                cols.append(j)
    n = len(terms)
    parents = sp.csr_matrix((np.ones(len(rows), dtype=bool), (rows, cols)), shape=(n, n))
    parents.sum_duplicates()
    cycle = find_cycle(parents)
    if cycle:
        names = " -> ".join(terms[i] for i in cycle)
        raise InputError(f"{path}: the is_a/part_of edges form a cycle: {names}; fix the ontology file.")
    alt_ids = {alt: t["id"] for t in live for alt in t["alt_id"] if alt not in index}
    return ParsedObo(terms, aspect, [t["name"] for t in live], parents, alt_ids, frozenset(obsolete - set(alt_ids)))


def find_cycle(parents: sp.csr_matrix) -> list[int]:
    """Terms of one cycle of a child -> parent matrix, closed (first == last); [] when it is acyclic.

    Peels terms that have no child left, a whole layer at a time (as many rounds as the depth)."""
    n = parents.shape[0]
    coo = parents.tocoo()
    child, parent = coo.row.astype(np.int64), coo.col.astype(np.int64)
    alive = np.ones(n, dtype=bool)
    while True:
        live_edge = alive[child] & alive[parent]
        n_children = np.bincount(parent[live_edge], minlength=n)
        leaves = alive & (n_children == 0)
        if not leaves.any():
            break
        alive &= ~leaves
    if not alive.any():
        return []
    # every remaining term has a remaining child: walk down children until a term repeats
    live_edge = alive[child] & alive[parent]
    child_of = np.full(n, -1, dtype=np.int64)
    child_of[parent[live_edge]] = child[live_edge]
    path, seen = [], {}
    node = int(np.flatnonzero(alive)[0])
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = int(child_of[node])
    loop = path[seen[node] :] + [node]
    return loop[::-1]  # child -> parent order
