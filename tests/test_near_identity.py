"""reference.near_identity: hits near-identical to their query (identity and coverage of both lengths) are dropped,
on hand-made hits and with DIAMOND; the CAFA-style header rule works beside it."""

from __future__ import annotations

import pandas as pd
import pytest
from predictor_fixtures import SEQUENCES, TERMS
from test_reference import HAS_DIAMOND, echo_reference, pool

from cafa_mlflow.data.reference import drop_near_identical
from cafa_mlflow.predictors.base import Predictor, ProteinSet

MF5 = TERMS[7]


def hand_made_hits() -> pd.DataFrame:
    """Query Q (300 residues) and its hits; coverage = aligned residues / length, computed by hand."""
    rows = [
        # target, % identity, aligned query residues / 300, aligned target residues / target length
        ("SAME_STRAIN", 99.0, 300 / 300, 300 / 300),  # 100 / 100: dropped
        ("EDGE", 95.0, 270 / 300, 279 / 310),  # 90.0 / 90.0: at both limits, dropped
        ("LONGER", 99.0, 300 / 300, 300 / 350),  # 100 / 85.7: a longer protein (a fusion), kept
        ("FRAGMENT", 100.0, 150 / 300, 150 / 150),  # 50 / 100: a fragment of the query, kept
        ("ORTHOLOG", 94.9, 300 / 300, 300 / 300),  # below the identity limit, kept
    ]
    return pd.DataFrame(
        {
            "qseqid": "Q",
            "sseqid": [r[0] for r in rows],
            "pident": [r[1] for r in rows],
            "evalue": 1e-50,
            "bitscore": [500.0, 480.0, 470.0, 300.0, 450.0],
            "qcovhsp": [round(100 * r[2], 1) for r in rows],
            "scovhsp": [round(100 * r[3], 1) for r in rows],
        }
    )


def test_near_identical_hits_are_dropped_by_identity_and_both_coverages():
    hits = hand_made_hits()
    kept = drop_near_identical(hits, 95.0, 90.0)
    assert kept["sseqid"].tolist() == ["LONGER", "FRAGMENT", "ORTHOLOG"]  # order (best bitscore first) kept
    assert drop_near_identical(hits, 99.0, 90.0)["sseqid"].tolist() == ["EDGE", "LONGER", "FRAGMENT", "ORTHOLOG"]
    assert drop_near_identical(hits, 95.0, 50.0)["sseqid"].tolist() == ["ORTHOLOG"]
    assert drop_near_identical(hits, 0.0, 90.0) is hits  # off: every hit kept


@pytest.mark.skipif(not HAS_DIAMOND, reason="diamond not installed")
def test_near_identity_drops_the_own_protein_that_neither_accession_nor_sequence_finds(tmp_path):
    mutated = SEQUENCES["HBA"][:10] + "W" + SEQUENCES["HBA"][11:]  # 141 of 142 residues identical: 99.3 %
    fragment = mutated[:100]  # 99 of 100 residues identical (99.0 %), covering 100 of the entry's 142 (70.4 %)
    predictor = echo_reference(tmp_path, accession="P69905", near_identity=(95.0, 90.0)).fit(pool(tmp_path))

    def voted(fasta_text: str, sequence: str) -> pd.DataFrame:
        fasta = tmp_path / "targets.fasta"
        fasta.write_text(fasta_text)
        predictor.predict(ProteinSet(["T96060000001"], fasta=fasta, sequences=[sequence]))
        return predictor.hits.set_index("sseqid")

    # no accession in the header and not identical: the near-identity rule drops the own entry, HBB votes
    assert voted(f">T96060000001\n{mutated}\n", mutated).index.tolist() == ["HBB"]
    # a fragment of the protein is not near-identical over both lengths: its own entry votes
    hits = voted(f">T96060000001\n{fragment}\n", fragment)
    assert hits.loc["P69905", "pident"] == pytest.approx(99.0)
    assert hits.loc["P69905", "qcovhsp"] == pytest.approx(100.0)
    assert hits.loc["P69905", "scovhsp"] == pytest.approx(100 * 100 / 142, abs=0.1)
    # the CAFA-style header still finds the own entry by accession, whatever the rule
    assert voted(f">T96060000001 P69905\n{fragment}\n", fragment).index.tolist() == ["HBB"]
    # saved and loaded, the rule stays
    loaded = Predictor.load(predictor.save(tmp_path / "model"), threads=1)
    assert loaded.near_identity == (95.0, 90.0)
    tm = loaded.predict(ProteinSet(["T96060000001"], sequences=[mutated]))
    assert set(loaded.hits["sseqid"]) == {"HBB"} and dict(zip(tm.terms, tm.matrix.toarray()[0]))[MF5] == 1.0
