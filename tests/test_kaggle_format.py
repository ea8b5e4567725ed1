"""Files laid out exactly as Kaggle ships CAFA-6 (headers, no-header tables, IA.tsv) go through prepare."""

from __future__ import annotations

import pandas as pd
import pytest

from cafa_mlflow.data.prepared import load_prepared, prepare_dataset
from cafa_mlflow.data.stats import dataset_stats
from cafa_mlflow.io.fasta import load_fasta
from tests.cafa_fixtures import OBO, write

TRAIN_FASTA = """>sp|A0A0C5B5G6|MOTSC_HUMAN Mitochondrial-derived peptide MOTS-c OS=Homo sapiens OX=9606 GN=MT-RNR1 PE=1 SV=1
MRWQEMGYIFYPRKLR
>sp|A0A087X1C5|CP2D7_HUMAN Putative cytochrome P450 2D7 OS=Homo sapiens OX=9606 GN=CYP2D7 PE=5 SV=1
MGLEALVPLAMIVAIFLLLVDLMHRHQRWAARYPPGPLPLPGLGNLLHVDFQNTPYCFDQLRRRFGDVFSLQLAWTPVVVLNGLAAVREAMVTRGEDTADRPPAPIYQVLGFGPRSQGVILSRYG
PAWREQRRFSVSTLRNLGLGKKSLEQWVTEEAACLCAAFADQAGRPFRPNGLLDKAVSNVIASLTCGRRFEYDDPRFLRLLDLAQEGLKEESGFLREVLNAVPVLLHIPALAGKVLRFQKAFLT
>sp|A0A0B4J2F0|PIOS1_HUMAN Protein PIGBOS1 OS=Homo sapiens OX=9606 GN=PIGBOS1 PE=1 SV=1
MFRRLTFAQLLFATVLGIAGGVYIFQPVFEQYAKDQKELKEKMQLVQESEEKKS
>sp|P0DPI2|GAL3A_HUMAN Glutamine amidotransferase-like class 1 domain-containing protein 3A, mitochondrial OS=Homo sapiens OX=9606 GN=GATD3A PE=1 SV=1
MAAVRALVASRLAAASAFTSLSPGGRTPSQRAALHLSVPRPAARVALVLSGCGVYDGTEVHEASAILVHLSRGGAEVQIFAPDVPQMHVIDHTKGQPSEGESRNVLTESARIARGKITDLANLSAAN
>sp|Q8I6R7|ACN2_ACAGO Acanthoscurrin-2 (Fragment) OS=Acanthoscurria gomesiana OX=115339 GN=acantho2 PE=1 SV=1
GGGGGGGLGGGGGLGGGGLGGGKGLGGGGLGGGGLGGGGLGGGGLGGGKGLGGGGLGGGGLGGGRGGGYGGGGGYGGGYGGGYGGGKYKGGKYKGGKYKGGKYKGGKYKGGKYKGGKYKGGKYKGGKYKGGKYKGGKYKGGKYKGGKYKGGKYKGGKYKGGKYK
"""
# Kaggle's terms are propagated already; a pipeline must not rely on it (it propagates again).
TRAIN_TERMS = """EntryID\tterm\taspect
A0A0C5B5G6\tGO:0000005\tP
A0A0C5B5G6\tGO:0000004\tP
A0A0C5B5G6\tGO:0000001\tP
A0A087X1C5\tGO:0000011\tC
A0A087X1C5\tGO:0000010\tC
A0A0B4J2F0\tGO:0000021\tF
A0A0B4J2F0\tGO:0000020\tF
P0DPI2\tGO:0000002\tP
P0DPI2\tGO:0000001\tP
Q8I6R7\tGO:0000003\tP
Q8I6R7\tGO:0000001\tP
"""
TRAIN_TAXONOMY = "A0A0C5B5G6\t9606\nA0A087X1C5\t9606\nA0A0B4J2F0\t9606\nP0DPI2\t9606\nQ8I6R7\t115339\n"
IA_TSV = (
    "GO:0000001\t0\nGO:0000002\t0.5\nGO:0000003\t0.25\nGO:0000004\t1.5\nGO:0000005\t2\nGO:0000010\t0\nGO:0000011\t3\n"
)
TEST_FASTA = """>A0A0C5B5G6 9606
MRWQEMGYIFYPRKLR
>A0A1B0GTW7 9606
MLLLLLLLLLLLLLLLLLLLLLLLLL
>Q9VXY1 7227
MKVLAAGIVALLLAAGCSS
"""
TAXON_LIST = "ID\tSpecies\n9606\tHomo sapiens\n7227\tDrosophila melanogaster\n"


@pytest.fixture(scope="module")
def kaggle(tmp_path_factory):
    root = tmp_path_factory.mktemp("kaggle")
    write(root / "Train" / "go-basic.obo", OBO)
    write(root / "Train" / "train_sequences.fasta", TRAIN_FASTA)
    write(root / "Train" / "train_terms.tsv", TRAIN_TERMS)
    write(root / "Train" / "train_taxonomy.tsv", TRAIN_TAXONOMY)
    write(root / "IA.tsv", IA_TSV)
    write(root / "Test" / "testsuperset.fasta", TEST_FASTA)
    write(root / "Test" / "testsuperset-taxon-list.tsv", TAXON_LIST)  # not needed by prepare
    return root


def data_block(root):
    """params.yaml's `data:` block for Kaggle's layout."""
    return {
        "obo": root / "Train" / "go-basic.obo",
        "train_fasta": root / "Train" / "train_sequences.fasta",
        "train_terms": root / "Train" / "train_terms.tsv",
        "train_taxonomy": root / "Train" / "train_taxonomy.tsv",
        "test_fasta": root / "Test" / "testsuperset.fasta",
        "test_terms": None,
        "ia": root / "IA.tsv",
    }


def test_headers(kaggle):
    train = load_fasta(kaggle / "Train" / "train_sequences.fasta")
    assert [(r.id, r.taxon) for r in train] == [
        ("A0A0C5B5G6", "9606"),
        ("A0A087X1C5", "9606"),
        ("A0A0B4J2F0", "9606"),
        ("P0DPI2", "9606"),
        ("Q8I6R7", "115339"),
    ]
    lines = TRAIN_FASTA.splitlines()
    assert train[1].sequence == lines[3] + lines[4]  # lines joined
    test = load_fasta(kaggle / "Test" / "testsuperset.fasta")
    assert [(r.id, r.taxon) for r in test] == [("A0A0C5B5G6", "9606"), ("A0A1B0GTW7", "9606"), ("Q9VXY1", "7227")]


def test_prepare_on_kaggle_layout(kaggle, tmp_path):
    prep = {
        "subsample": 0,
        "test_subsample": 0,
        "min_count": 1,
        "top_k": 0,
        "val_fraction": 0.2,
        "split": "random",
        "split_min_identity": 40,
        "split_max_evalue": 0.001,
        "seed": 0,
    }
    summary = prepare_dataset(data_block(kaggle), prep, tmp_path / "prepared")
    data = load_prepared(tmp_path / "prepared")
    assert summary == {
        "n_train": 4,
        "n_val": 1,
        "n_terms_BPO": 5,
        "n_terms_CCO": 2,
        "n_terms_MFO": 2,
        "n_terms_animal": 0,
        "n_test": 3,
    }  # the test OBO also has a non-GO namespace
    assert data.proteins["protein"].tolist() == ["A0A0C5B5G6", "A0A087X1C5", "A0A0B4J2F0", "P0DPI2", "Q8I6R7"]
    assert data.proteins["taxon"].tolist() == ["9606", "9606", "9606", "9606", "115339"]
    labels = data.labels.reindex(terms=["GO:0000001", "GO:0000002", "GO:0000003", "GO:0000004", "GO:0000005"])
    assert labels.matrix.toarray()[0].tolist() == [1, 1, 1, 1, 1]  # propagated again: part_of to GO:0000003
    assert data.ia == {
        "GO:0000001": 0.0,
        "GO:0000002": 0.5,
        "GO:0000003": 0.25,
        "GO:0000004": 1.5,
        "GO:0000005": 2.0,
        "GO:0000010": 0.0,
        "GO:0000011": 3.0,
    }  # Kaggle's IA.tsv, as given
    vocab = pd.read_csv(tmp_path / "prepared" / "terms.tsv", sep="\t")
    assert vocab.set_index("term")["ia"].to_dict()["GO:0000021"] == 0.0  # not in IA.tsv: 0
    assert data.truth_file("test") is None  # Kaggle ships no test annotations
    assert [r.id for r in load_fasta(data.test_fasta)] == ["A0A0C5B5G6", "A0A1B0GTW7", "Q9VXY1"]


def test_stats_on_kaggle_layout(kaggle):
    root = kaggle / "Train"
    stats = dataset_stats(root / "train_sequences.fasta", root / "train_terms.tsv", root / "go-basic.obo")
    assert (stats.n_proteins, stats.n_annotated) == (5, 5)
    assert stats.per_aspect.loc["all", "annotations"] == 11 and stats.per_aspect.loc["BPO", "labels"] == 5 + 2 + 2
