"""The training pool with labels over every term it carries (no vocabulary cut), for transfer and stacking."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cafa_mlflow.go.annotations import resolve_terms
from cafa_mlflow.go.ia import compute_ia
from cafa_mlflow.go.ontology import Ontology, load_obo
from cafa_mlflow.io.fasta import FastaRecord, load_fasta
from cafa_mlflow.io.ia import read_ia
from cafa_mlflow.io.terms import read_terms
from cafa_mlflow.labels import TermMatrix, label_matrix


@dataclass
class Pool:
    """Annotated training proteins (FASTA order), propagated labels over the terms they carry, IA."""

    ontology: Ontology
    records: list[FastaRecord]
    labels: TermMatrix
    ia: dict[str, float]

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(r.sequence) for r in self.records])


def load_pool(data: dict) -> Pool:
    """From params' `data` block (obo, train_fasta, train_terms, optional ia): every annotated protein
    with a sequence; IA from data.ia or computed from the propagated pool annotations."""
    ontology = load_obo(data["obo"])
    ann = resolve_terms(read_terms(data["train_terms"]), ontology, str(data["train_terms"]))
    annotated = set(ann["protein"])
    records = [r for r in load_fasta(data["train_fasta"]) if r.id in annotated]
    full = label_matrix(ann, ontology, [r.id for r in records])
    ia = read_ia(data["ia"]) if data.get("ia") else compute_ia(full, ontology, propagated=True).to_dict()
    used = np.flatnonzero(full.matrix.getnnz(axis=0))
    labels = TermMatrix(full.proteins, [ontology.terms[j] for j in used], full.matrix[:, used])
    return Pool(ontology, records, labels, ia)
