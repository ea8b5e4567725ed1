"""Tiny GO, labels, embeddings and real protein sequences for the predictor, ensemble and serving tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.go.ontology import load_obo
from cafa_mlflow.predictors.base import Predictor

# BPO: 8150 <- 0001 <- 0002 ; CCO: 5575 <- 0003 ; MFO: 3674 <- 0004 <- 0005
OBO = """format-version: 1.2

[Term]
id: GO:0008150
name: biological_process
namespace: biological_process

[Term]
id: GO:0000001
name: bp one
namespace: biological_process
is_a: GO:0008150

[Term]
id: GO:0000002
name: bp two
namespace: biological_process
is_a: GO:0000001

[Term]
id: GO:0005575
name: cellular_component
namespace: cellular_component

[Term]
id: GO:0000003
name: cc three
namespace: cellular_component
is_a: GO:0005575

[Term]
id: GO:0003674
name: molecular_function
namespace: molecular_function

[Term]
id: GO:0000004
name: mf four
namespace: molecular_function
is_a: GO:0003674

[Term]
id: GO:0000005
name: mf five
namespace: molecular_function
is_a: GO:0000004
"""
TERMS = ["GO:0008150", "GO:0000001", "GO:0000002", "GO:0005575", "GO:0000003", "GO:0003674", "GO:0000004", "GO:0000005"]

# Real UniProt sequences: two globins (human HBA, HBB), lysozyme C (human), ubiquitin (human).
SEQUENCES = {
    "HBA": "MVLSPADKTNVKAAWGKVGAHAGEYGAEALERMFLSFPTTKTYFPHFDLSHGSAQVKGHGKKVADALTNAVAHVDDMPNALSALSDLHAHKLRVDPVNFKLLSHCLLVTLAAHLPAEFTPAVHASLDKFLASVSTVLTSKYR",
    "HBB": "MVHLTPEEKSAVTALWGKVNVDEVGGEALGRLLVVYPWTQRFFESFGDLSTPDAVMGNPKVKAHGKKVLGAFSDGLAHLDNLKGTFATLSELHCDKLHVDPENFRLLGNVLVCVLAHHFGKEFTPPVQAAYQKVVAGVANALAHKYH",
    "LYZ": "MKALIVLGLVLLSVTVQGKVFERCELARTLKRLGMDGYRGISLANWMCLAKWESGYNTRATNYNAGDRSTDYGIFQINSRYWCNDGKTPGAVNACHLSCSALLQDNIADAVACAKRVVRDPQGIRAWVAWRNRCQNRDVRQYVQGCGV",
    "UBQ": "MQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEGIPPDQQRLIFAGKQLEDGRTLSDYNIQKESTLHLVLRLRGG",
}


def write_obo(folder: Path) -> Path:
    path = Path(folder) / "tiny.obo"
    path.write_text(OBO)
    return path


def tiny_ontology(folder: Path):
    return load_obo(write_obo(folder))


def labels(proteins: list[str], rows: list[list[str]]) -> TermMatrix:
    """Propagation-free 0/1 TermMatrix over TERMS (callers list every carried term)."""
    m = np.zeros((len(proteins), len(TERMS)), np.float32)
    for i, terms in enumerate(rows):
        for t in terms:
            m[i, TERMS.index(t)] = 1.0
    return TermMatrix(proteins, TERMS, sp.csr_matrix(m))


def write_fasta(path: Path, ids: list[str]) -> Path:
    path.write_text("".join(f">{i}\n{SEQUENCES[i]}\n" for i in ids))
    return path


class UnsavedPredictor(Predictor):
    """Base of the tests' in-memory predictors: never saved or loaded."""

    def save_files(self, folder):  # pragma: no cover - never saved here
        raise NotImplementedError

    @classmethod
    def load_files(cls, folder):  # pragma: no cover
        raise NotImplementedError
