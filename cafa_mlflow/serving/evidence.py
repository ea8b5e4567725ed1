"""Evidence of predictions: for each predicted (protein, term), the final score, each member's score, the
training proteins that carried the term (what the members' last predict() computed: DIAMOND hits for
homology, neighbours for knn), the naive prior, and the child a GO-consistent parent took its score from.

One JSON object per output row (`evidence_rows`); `explain_table` renders one protein's rows for a reader."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cafa_mlflow.go.finalize import round_sig
from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.go.ontology import Ontology
from cafa_mlflow.predictors.base import Predictor

PRIOR_KIND = "naive"  # the member whose score is the term's prior (its frequency among training proteins)


def _row_scores(tm: TermMatrix, row: int) -> dict[str, float]:
    m = tm.matrix[row]
    m = m.tocsr() if not sp.isspmatrix_csr(m) else m
    return {tm.terms[j]: float(v) for j, v in zip(m.indices, m.data) if v > 0}


def _members(predictor: Predictor, raw: TermMatrix) -> tuple[dict[str, TermMatrix], str | None]:
    """Each member's scores of the last predict() and the name of the prior member (None: no naive member)."""
    scores = predictor.last_member_scores()
    if scores is None:
        return {predictor.kind: raw}, predictor.kind if predictor.kind == PRIOR_KIND else None
    kinds = {name: m.kind for name, m in getattr(predictor, "members", {}).items()}
    return scores, next((name for name, kind in kinds.items() if kind == PRIOR_KIND), None)


def protein_evidence(
    protein: str,
    row: int,
    final: dict[str, float],
    raw: TermMatrix,
    predictor: Predictor,
    ontology: Ontology,
    sig: int,
    top: int = 3,
    descendants: sp.csc_matrix | None = None,
) -> dict[str, dict[str, Any]]:
    """{term: evidence} for one protein's finalized scores `final` (row `row` of the last predict(), whose
    members scored the same proteins in the same order). descendants: `ontology.ancestors.tocsc()`, if at hand."""
    members, prior = _members(predictor, raw)
    member_rows = {name: _row_scores(tm, row) for name, tm in members.items()}
    raw_row = _row_scores(raw, row)
    if descendants is None:
        descendants = ontology.ancestors.tocsc()  # column t: t and its descendants
    support = predictor.evidence(protein, list(final), top) or {}
    out = {}
    for term, score in final.items():
        own = raw_row.get(term, 0.0)
        child = None
        if term in ontology.index:
            below = descendants[:, ontology.index[term]].indices
            best = max(
                ((raw_row.get(ontology.terms[d], 0.0), ontology.terms[d]) for d in below if ontology.terms[d] != term),
                default=(0.0, None),
            )
            if best[0] > own:
                child = {"term": best[1], "score": float(round_sig(np.array([best[0]]), sig)[0])}
        out[term] = {
            "score": score,
            "members": {
                name: float(round_sig(np.array([r[term]]), sig)[0]) for name, r in member_rows.items() if term in r
            },
            "naive_prior": None
            if prior is None
            else float(round_sig(np.array([member_rows[prior].get(term, 0.0)]), sig)[0]),
            "propagated_from": child,
            "support": support.get(term, []),
        }
    return out


def evidence_rows(
    out: pd.DataFrame, raw: TermMatrix, predictor: Predictor, ontology: Ontology, sig: int, top: int = 3
) -> list[str]:
    """One JSON string per row of the model output `out` (protein, term, score), from the last predict()."""
    row_of = {pid: i for i, pid in enumerate(raw.proteins)}
    texts: list[str] = [""] * len(out)
    positions = np.arange(len(out))
    descendants = ontology.ancestors.tocsc()
    for protein, idx in pd.Series(positions).groupby(out["protein"].to_numpy(), sort=False):
        part = out.iloc[idx.to_numpy()]
        final = dict(zip(part["term"], part["score"].astype(float)))
        found = protein_evidence(protein, row_of[protein], final, raw, predictor, ontology, sig, top, descendants)
        for k, term in zip(idx.to_numpy(), part["term"]):
            texts[k] = json.dumps(found[term], sort_keys=True)
    return texts


def explain_table(rows: pd.DataFrame, names: dict[str, str] | None = None) -> str:
    """A reader's view of one protein's rows (protein, term, score, evidence): one block per term."""
    names = names or {}
    lines = []
    for term, score, text in zip(rows["term"], rows["score"], rows["evidence"]):
        ev = json.loads(text)
        title = f"{term} {names.get(term, '')}".rstrip()
        members = ", ".join(f"{m} {s:g}" for m, s in sorted(ev["members"].items())) or "none"
        lines.append(f"{title}  score {score:g}")
        lines.append(f"  members: {members}")
        if ev["naive_prior"] is not None:
            lines.append(f"  naive prior: {ev['naive_prior']:g}")
        if ev["propagated_from"]:
            child = ev["propagated_from"]
            lines.append(f"  GO-consistency: score taken from child {child['term']} ({child['score']:g})")
        for s in ev["support"]:
            if "bitscore" in s:
                lines.append(
                    f"  {s['member']}: {s['protein']}  identity {s['identity']:.1f}%  "
                    f"e-value {s['evalue']:.2g}  bitscore {s['bitscore']:.1f}"
                    + (f"  evidence {s['evidence']}" if s.get("evidence") else "")
                )
            else:
                lines.append(f"  {s['member']}: {s['protein']}  similarity {s['similarity']:.3f}")
    return "\n".join(lines)
