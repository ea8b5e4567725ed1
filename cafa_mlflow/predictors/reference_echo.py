"""The echo of a holdout query's own reference entry, and the vote without it.

The training pool's labels (experimental annotations of 2019) were often already in the pool protein's own entry of
the reference (Swiss-Prot 2014-01), and from there copied by curators and pipelines to its orthologs' entries (ISS,
ISO, IEA). The own entry never votes (`reference.exclude`), but the orthologs' copies do, so a validation or
out-of-fold query is voted for by its own earlier knowledge; a test protein, first annotated after the reference
was frozen, is not (benchmarks/RESULTS.md, "Validation echo of the reference"). `reference.holdout_own_terms` says
what the hits of a holdout query may transfer of the terms its own entry carries:

- `vote`: everything (no correction);
- `drop_direct`: no hit transfers a term the own entry is directly annotated with (the signature of a copy:
  the same specific term); the hit's other terms, their ancestors included, still vote;
- `drop_propagated`: no hit transfers any term of the own entry's propagated set (aspect roots excepted, so
  the per-aspect denominators are unchanged): the vote then predicts only what the reference did not know of
  the query.

The own entry is found by accession (the query id, or the accession its FASTA header or id map gives) and by
identical sequence. `copy_free_vote` (`drop_copies`: each hit's labels rebuilt from its direct annotations minus the
own entry's, so a copy's ancestors go too) is measured beside them (benchmarks/validation_echo.py); it needs the
ontology at prediction time and is not a setting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.predictors.transfer import vote

if TYPE_CHECKING:
    from cafa_mlflow.go.ontology import Ontology

OWN_TERMS = ("vote", "drop_direct", "drop_propagated")


def own_entry_rows(
    query_ids: Sequence[str],
    query_hash: np.ndarray,
    reference_ids: Sequence[str],
    reference_hash: pd.Series,
    accessions: Mapping[str, str] | None = None,
) -> np.ndarray:
    """Row of each query's own entry in `reference_ids` (-1: none): the entry of its accession (`accessions[q]`,
    else the query id), else the first entry with an identical sequence (equal `sequence_hash`)."""
    accessions = accessions or {}
    index = pd.Index(list(reference_ids))
    rows = index.get_indexer([accessions.get(q, q) for q in query_ids])
    by_hash = pd.Series(np.arange(len(reference_hash)), index=reference_hash.to_numpy())
    by_hash = by_hash[~by_hash.index.duplicated()]
    same_seq = by_hash.reindex(query_hash).fillna(-1).to_numpy(np.int64)
    return np.where(rows >= 0, rows, same_seq)


def own_term_mask(
    own_rows: np.ndarray,
    labels: TermMatrix,
    direct: pd.DataFrame | None,
    root_col: np.ndarray | None,
) -> sp.csr_matrix:
    """queries x labels.terms 0/1: the own entry's terms that its hits may not transfer. `direct`: the reference's
    (protein, term) direct annotations (`drop_direct`), None = the propagated labels (`drop_propagated`); aspect
    roots (`root_col`) are never masked."""
    found = own_rows >= 0
    if direct is None:
        picked = labels.matrix[np.maximum(own_rows, 0)].tocsr()
    else:
        proteins = np.asarray(labels.proteins, dtype=object)[np.maximum(own_rows, 0)]
        table = direct[direct["protein"].isin(set(proteins[found]))]
        cols = pd.Index(labels.terms).get_indexer(table["term"])
        rows_of = pd.Series(np.arange(len(own_rows))[found], index=proteins[found])
        pairs = table.assign(col=cols)[cols >= 0].merge(
            rows_of.rename("row"), left_on="protein", right_index=True
        )  # one own entry may serve several queries (identical sequences)
        picked = sp.csr_matrix(
            (np.ones(len(pairs), np.float32), (pairs["row"].to_numpy(), pairs["col"].to_numpy())),
            shape=(len(own_rows), len(labels.terms)),
        )
    columns = np.ones(len(labels.terms), np.float32)
    if root_col is not None:
        columns[np.unique(root_col[root_col >= 0])] = 0  # roots: the per-aspect denominators stay as they are
    mask = (sp.diags(found.astype(np.float32)) @ (picked > 0).astype(np.float32) @ sp.diags(columns)).tocsr()
    mask.eliminate_zeros()
    return mask


def masked_vote(
    hits: pd.DataFrame, query_ids: Sequence[str], labels: TermMatrix, mask: sp.csr_matrix, root_col: np.ndarray
) -> TermMatrix:
    """The bitscore vote of `hits` (qseqid, sseqid, bitscore; targets in `labels`) with per-aspect denominators,
    where hit j of query q transfers labels[j] minus mask[q]: one row per (query, hit) pair."""
    q = pd.Index(list(query_ids)).get_indexer(hits["qseqid"])
    t = pd.Index(labels.proteins).get_indexer(hits["sseqid"])
    keep = (q >= 0) & (t >= 0)
    q, t, bits = q[keep], t[keep], hits["bitscore"].to_numpy(np.float64)[keep]
    carried = labels.matrix[t].tocsr()
    pair_labels = (carried - carried.multiply(mask[q])).tocsr()
    pair_labels.eliminate_zeros()
    weights = sp.csr_matrix((bits, (q, np.arange(len(q)))), shape=(len(query_ids), len(q)))
    return TermMatrix(list(query_ids), labels.terms, vote(weights, pair_labels, root_col))


def term_closure(terms: Sequence[str], ontology: Ontology) -> sp.csr_matrix:
    """terms x terms 0/1: each term's ancestors among `terms`, itself included (the propagation of one direct
    annotation restricted to the reference's carried terms)."""
    cols = np.array([ontology.index[t] for t in terms])
    raw = sp.csr_matrix((np.ones(len(cols), np.float32), (np.arange(len(cols)), cols)), (len(cols), len(ontology)))
    full = ontology.propagate(raw).tocsc()
    return full[:, cols].tocsr()


def direct_matrix(direct: pd.DataFrame, labels: TermMatrix, proteins: np.ndarray) -> sp.csr_matrix:
    """rows of `proteins` (rows of `labels`, -1 = an empty row) x labels.terms 0/1: their direct annotations."""
    names = np.asarray(labels.proteins, dtype=object)[np.maximum(proteins, 0)]
    wanted = pd.Series(np.flatnonzero(proteins >= 0), index=names[proteins >= 0])
    table = direct[direct["protein"].isin(set(wanted.index))]
    cols = pd.Index(labels.terms).get_indexer(table["term"])
    table = table.assign(col=cols)[cols >= 0].merge(wanted.rename("row"), left_on="protein", right_index=True)
    values = np.ones(len(table), np.float32)
    matrix = sp.csr_matrix((values, (table["row"], table["col"])), shape=(len(proteins), len(labels.terms)))
    return (matrix > 0).astype(np.float32).tocsr()


def copy_free_vote(
    hits: pd.DataFrame,
    query_ids: Sequence[str],
    labels: TermMatrix,
    own_rows: np.ndarray,
    direct: pd.DataFrame,
    closure: sp.csr_matrix,
    root_col: np.ndarray,
) -> TermMatrix:
    """`drop_copies`: the vote as if the hits' copies of the query's own entry had never been made: hit j of a
    query with an own entry transfers the propagation of its direct annotations minus the own entry's direct
    terms (an ortholog annotated in an aspect only by the copy no longer counts in that aspect's denominator)."""
    q = pd.Index(list(query_ids)).get_indexer(hits["qseqid"])
    t = pd.Index(labels.proteins).get_indexer(hits["sseqid"])
    keep = (q >= 0) & (t >= 0)
    q, t, bits = q[keep], t[keep], hits["bitscore"].to_numpy(np.float64)[keep]
    own = own_rows[q]
    echo = own >= 0
    hit_direct = direct_matrix(direct, labels, np.where(echo, t, -1))
    own_direct = direct_matrix(direct, labels, own)
    remaining = hit_direct - hit_direct.multiply(own_direct)
    rebuilt = ((remaining @ closure) > 0).astype(np.float32)
    unchanged = sp.diags((~echo).astype(np.float32)) @ labels.matrix[t]
    pair_labels = (rebuilt + unchanged).tocsr()
    pair_labels.eliminate_zeros()
    weights = sp.csr_matrix((bits, (q, np.arange(len(q)))), shape=(len(query_ids), len(q)))
    return TermMatrix(list(query_ids), labels.terms, vote(weights, pair_labels, root_col))
