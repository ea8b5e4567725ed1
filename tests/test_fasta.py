"""FASTA reader: Kaggle's header styles, compression, cleaning and errors that name file and line."""

from __future__ import annotations

import logging

import pytest

from cafa_mlflow.errors import InputError
from cafa_mlflow.io.fasta import FastaRecord, header_accession, load_fasta, parse_header, read_fasta, write_fasta
from tests.cafa_fixtures import assert_prepare_writes_nothing, snapshot, write

GOOD = """>sp|A0A0C5B5G6|MOTSC_HUMAN Mitochondrial-derived peptide MOTS-c OS=Homo sapiens OX=9606 GN=MT-RNR1 PE=1 SV=1
MRWQEMGYIFYPRKLR
>tr|Q9XYZ1|Q9XYZ1_DROME Uncharacterized protein OS=Drosophila melanogaster OX=7227
mkvl
AAJ*

>P12345 10090
MKJJX
>BARE
ACDEFGHIKLMNPQRSTVWYXBUZO
"""


@pytest.mark.parametrize("suffix", [".fasta", ".fasta.gz", ".fasta.xz"])
def test_reads_all_header_styles_and_compressions(tmp_path, suffix, caplog):
    path = write(tmp_path / f"seqs{suffix}", GOOD)
    with caplog.at_level(logging.WARNING):
        records = load_fasta(path)
    assert records == [
        FastaRecord("A0A0C5B5G6", "MRWQEMGYIFYPRKLR", "9606"),
        FastaRecord("Q9XYZ1", "MKVLAAX", "7227"),  # upper-cased, lines joined, trailing * dropped, J -> X
        FastaRecord("P12345", "MKXXX", "10090"),
        FastaRecord("BARE", "ACDEFGHIKLMNPQRSTVWYXBUZO", None),
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "replaced 3 'J' residues with 'X'" in warnings[0]


def test_parse_header():
    assert parse_header("sp|P1|N_HUMAN desc OX=9606 GN=x") == ("P1", "9606")
    assert parse_header("sp|P1|N_HUMAN no taxon") == ("P1", None)
    assert parse_header("A0A0C5B5G6 9606") == ("A0A0C5B5G6", "9606")
    assert parse_header("A0A0C5B5G6 some words") == ("A0A0C5B5G6", None)
    assert parse_header("Q6I621") == ("Q6I621", None)


def test_cafa_target_headers_carry_an_accession(tmp_path):
    assert header_accession("T96060000001 P12345") == "P12345"
    assert header_accession("T96060000001 A0A0C5B5G6 extra words") == "A0A0C5B5G6"
    assert header_accession("T96060000001 P12345-2") == "P12345-2"  # an isoform
    for header in ("A0A0C5B5G6 9606", "T96060000001 1433B_HUMAN", "sp|P1|N_HUMAN desc", "Q6I621", "P12345 P12345"):
        assert header_accession(header) is None  # a taxon, an entry name, UniProt's own style, bare, the id again
    path = write(tmp_path / "targets.fasta", ">T96060000001 P12345\nMK\n>T96060000002\nMV\n")
    assert load_fasta(path) == [
        FastaRecord("T96060000001", "MK", None, "P12345"),
        FastaRecord("T96060000002", "MV", None),
    ]


def test_id_map_reader(tmp_path):
    from cafa_mlflow.io.id_map import read_id_map

    good = write(tmp_path / "map.tsv", "EntryID\taccession\n# a comment\nT1\tP12345\n\nT2 Q6I621\n")
    assert read_id_map(good) == {"T1": "P12345", "T2": "Q6I621"}
    with pytest.raises(InputError, match=r"names.tsv:2: '1433B_HUMAN' is not a UniProt accession"):
        read_id_map(write(tmp_path / "names.tsv", "T1 P12345\nT2 1433B_HUMAN\n"))
    with pytest.raises(InputError, match=r"twice.tsv:2: 'T1' is mapped twice"):
        read_id_map(write(tmp_path / "twice.tsv", "T1 P12345\nT1 Q6I621\n"))


def test_streams_one_record_at_a_time(tmp_path):
    path = write(tmp_path / "s.fasta", ">A\nMK\n>B\nMK1\n")
    records = read_fasta(path)
    assert next(records) == FastaRecord("A", "MK", None)  # the bad record further down is not read yet
    with pytest.raises(InputError, match=r"s.fasta:4: protein 'B'"):
        next(records)


def test_write_fasta_round_trip(tmp_path):
    out = tmp_path / "out.fasta.gz"
    write_fasta(out, [("A", "M" * 130), ("B", "KK")], width=60)
    assert load_fasta(out) == [FastaRecord("A", "M" * 130, None), FastaRecord("B", "KK", None)]


BAD = [
    (">A\nMK1V\n", 2, r"protein 'A' contains invalid characters '1'"),
    (">A\nMKV\nMK-V\n", 3, r"invalid characters '-'"),
    (">A\nMK.V\n", 2, r"invalid characters '\.'"),
    (">A\nMK V\n", 2, r"invalid characters ' '"),
    (">A\nMK*V\n", 2, r"invalid characters '\*'"),
    (">A\nMK*\nVV\n", 3, r"continues after a '\*' stop"),
    (">A\nMKV\n>B\n>C\nMK\n", 3, r"protein 'B' has an empty sequence"),
    (">A\nMKV\n>B\n*\n", 3, r"protein 'B' has an empty sequence"),
    (">A\nMKV\n>A\nMK\n", 3, r"duplicate protein id 'A'"),
    ("MKV\n>A\nMK\n", 1, r"sequence line before any '>' header"),
    (">A\nMK\n> \nMK\n", 3, r"header without an accession"),
]


@pytest.mark.parametrize("text,line,message", BAD)
@pytest.mark.parametrize("suffix", [".fasta", ".fasta.xz"])
def test_bad_input_names_file_and_line_and_writes_nothing(tmp_path, text, line, message, suffix):
    src = write(tmp_path / "in" / f"bad{suffix}", text)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(InputError, match=rf"bad{suffix}:{line}: .*{message}|bad{suffix}:{line}: {message}"):
        write_fasta(out_dir / "copy.fasta", ((r.id, r.sequence) for r in read_fasta(src)))
    assert snapshot(out_dir) == {}  # no partial copy, no temporary file left behind
    assert_prepare_writes_nothing(tmp_path / "prep", rf"bad{suffix}:{line}: ", train_fasta=src)


def test_empty_file_and_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"empty.fasta: no FASTA records"):
        load_fasta(write(tmp_path / "empty.fasta", "\n"))
    with pytest.raises(InputError, match=r"nope.fasta: file not found"):
        load_fasta(tmp_path / "nope.fasta")
