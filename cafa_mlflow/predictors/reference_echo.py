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
identical sequence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.predictors.transfer import vote

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
