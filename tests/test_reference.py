"""Reference databases in every format (tiny files written here), evidence filters, bad files, and the
reference-transfer member with DIAMOND: self-hit exclusion, a term only the reference carries, save/load."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from predictor_fixtures import SEQUENCES, TERMS, tiny_ontology, write_obo

from cafa_mlflow.data.reference import unavailable
from cafa_mlflow.errors import ConfigError, InputError
from cafa_mlflow.io.reference_formats import (
    evidence_codes,
    filter_evidence,
    read_cafa,
    read_database,
    read_gaf,
    read_metastudent,
    read_uniprot,
)
from cafa_mlflow.predictors.base import Predictor, ProteinSet, TrainSet
from cafa_mlflow.predictors.reference import ReferencePredictor

HAS_DIAMOND = shutil.which("diamond") is not None
HAS_BLAST = shutil.which("makeblastdb") is not None and shutil.which("blastdbcmd") is not None
BP, BP1, BP2, CC, CC3, MF, MF4, MF5 = TERMS

# the reference: HBA's own entry (BP1, experimental), HBB (BP2 experimental, MF5 electronic), LYZ (CC3 electronic)
ENTRIES = [
    ("HBA", "9606", [(BP1, "IDA")]),
    ("HBB", "9606", [(BP2, "IDA"), (MF5, "IEA")]),
    ("LYZ", "9606", [(CC3, "IEA")]),
]
EXPECTED = {("HBA", BP1, "IDA"), ("HBB", BP2, "IDA"), ("HBB", MF5, "IEA"), ("LYZ", CC3, "IEA")}


def uniprot_text(entries=ENTRIES) -> str:
    out = []
    for acc, taxon, gos in entries:
        seq = SEQUENCES[acc]
        out += [f"ID   {acc}_HUMAN             Reviewed;         {len(seq)} AA.", f"AC   {acc}; Q00000;"]
        out.append(f"OX   NCBI_TaxID={taxon};")
        out += [f"DR   GO; {term}; P:something; {code}:UniProtKB." for term, code in gos]
        out.append(f"SQ   SEQUENCE   {len(seq)} AA;  1 MW;  X CRC64;")
        out += [
            "     " + " ".join(seq[i : i + 10] for i in range(j, min(j + 60, len(seq)), 10))
            for j in range(0, len(seq), 60)
        ]
        out.append("//")
    return "\n".join(out) + "\n"


def gaf_text(entries=ENTRIES) -> str:
    lines = ["!gaf-version: 2.2"]
    for acc, taxon, gos in entries:
        for term, code in gos:
            lines.append("\t".join(["UniProtKB", acc, acc, "", term, "PMID:1", code, "", "P", "", "", "protein",
                                    f"taxon:{taxon}", "20140101", "UniProt", "", ""]))  # fmt: skip
    lines.append("\t".join(["UniProtKB", "LYZ", "LYZ", "NOT", MF4, "PMID:1", "IDA", "", "F", "", "", "protein",
                            "taxon:9606", "20140101", "UniProt"]))  # fmt: skip
    return "\n".join(lines) + "\n"


def fasta_text(ids) -> str:
    return "".join(f">sp|{i}|{i}_HUMAN name OX=9606\n{SEQUENCES[i]}\n" for i in ids)


def triples(data) -> set:
    return set(map(tuple, data.annotations[["protein", "term", "evidence"]].to_numpy().tolist()))


def test_uniprot_flat_file(tmp_path):
    path = tmp_path / "sprot.dat"
    path.write_text(uniprot_text())
    data = read_uniprot(path)
    assert data.sequences == {a: SEQUENCES[a] for a, _, _ in ENTRIES}
    assert triples(data) == EXPECTED
    assert set(data.annotations["taxon"]) == {"9606"}


def test_gaf_plus_fasta_skips_not_rows(tmp_path):
    gaf, fasta = tmp_path / "goa.gaf", tmp_path / "goa.fasta"
    gaf.write_text(gaf_text())
    fasta.write_text(fasta_text(["HBA", "HBB", "LYZ"]))
    data = read_gaf(gaf, fasta)
    assert triples(data) == EXPECTED  # the NOT|MF4 row of LYZ is not an annotation
    assert set(data.sequences) == {"HBA", "HBB", "LYZ"}


def test_cafa_fasta_and_terms_with_declared_evidence(tmp_path):
    fasta, terms = tmp_path / "train.fasta", tmp_path / "terms.tsv"
    fasta.write_text(fasta_text(["HBA", "HBB"]))
    terms.write_text(f"EntryID\tterm\taspect\nHBA\t{BP1}\tP\nHBB\t{MF5}\tF\nNOSEQ\t{CC3}\tC\n")
    data = read_cafa(fasta, terms)
    assert triples(data) == {("HBA", BP1, ""), ("HBB", MF5, "")}  # NOSEQ has no sequence: dropped
    declared = read_database({"format": "cafa", "fasta": str(fasta), "terms": str(terms), "evidence": "exp"})
    assert set(declared.annotations["evidence"]) == {"EXP"}


def write_metastudent(root: Path) -> Path:
    """The metastudent-data layout: per aspect a BLAST database (headers ACC|GO:...) and goasp_annot.dat."""
    per_aspect = {"BPO": [("HBA", [BP1]), ("HBB", [BP2, BP2])], "MFO": [("HBB", [MF5])], "CCO": [("LYZ", [CC3])]}
    for aspect, rows in per_aspect.items():
        folder = root / aspect
        folder.mkdir(parents=True)
        fasta = folder / "goasp.fasta"
        fasta.write_text("".join(f">{acc}|{','.join(terms)}\n{SEQUENCES[acc]}\n" for acc, terms in rows))
        subprocess.run(["makeblastdb", "-in", str(fasta), "-dbtype", "prot", "-out", str(fasta)], check=True,
                       capture_output=True)  # fmt: skip
        (folder / "goasp_annot.dat").write_text("".join(f"{acc}\t" + "\t".join(terms) + "\n" for acc, terms in rows))
    return root


@pytest.mark.skipif(not HAS_BLAST, reason="NCBI BLAST+ not installed")
def test_metastudent_layout(tmp_path):
    data = read_metastudent(write_metastudent(tmp_path / "dataset"))
    assert data.sequences == {a: SEQUENCES[a] for a in ("HBA", "HBB", "LYZ")}
    assert triples(data) == {(p, t, "") for p, t, _ in EXPECTED}  # no evidence codes in this layout


def test_evidence_filter_groups_and_codes(tmp_path):
    path = tmp_path / "sprot.dat"
    path.write_text(uniprot_text())
    table = read_uniprot(path).annotations
    assert len(filter_evidence(table, "all")) == 4
    assert set(filter_evidence(table, "experimental")["term"]) == {BP1, BP2}
    assert set(filter_evidence(table, ["electronic"])["term"]) == {MF5, CC3}
    assert set(filter_evidence(table, ["experimental", "iea"])["term"]) == {BP1, BP2, MF5, CC3}
    unknown = table.assign(evidence="")
    assert filter_evidence(unknown, "experimental").empty and len(filter_evidence(unknown, "all")) == 4
    with pytest.raises(ConfigError, match="reference.evidence='curated'"):
        evidence_codes(["curated"])


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("bad_dr.dat", uniprot_text().replace("IDA:UniProtKB.", "IDA"), "bad_dr.dat:4:"),
        ("bad_go.dat", uniprot_text().replace(f"DR   GO; {BP1}", "DR   GO; GO:12"), "bad_go.dat:4:"),
        ("no_end.dat", uniprot_text().rsplit("//", 1)[0], "no_end.dat:"),
        ("bad_seq.dat", uniprot_text().replace("MVLSPADKTN", "MVLSP1DKTN"), "bad_seq.dat:6:"),
    ],
)
def test_bad_uniprot_files_name_file_and_line(tmp_path, name, text, where):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError) as err:
        read_uniprot(path)
    message = str(err.value)
    assert where in message and "\n" not in message


def test_bad_gaf_and_terms_name_file_and_line(tmp_path):
    gaf, fasta = tmp_path / "short.gaf", tmp_path / "x.fasta"
    gaf.write_text("!gaf-version: 2.2\nUniProtKB\tHBA\tHBA\t\tGO:0000001\n")
    fasta.write_text(fasta_text(["HBA"]))
    with pytest.raises(InputError, match=r"short.gaf:2: 5 tab-separated columns"):
        read_gaf(gaf, fasta)
    terms = tmp_path / "terms.tsv"
    terms.write_text("EntryID\tterm\taspect\nHBA\tnot-a-term\tP\n")
    with pytest.raises(InputError, match=r"terms.tsv:2:"):
        read_cafa(fasta, terms)


def uniprot_reference(tmp_path, dat_text: str, name: str, cache: str, **kwargs) -> ReferencePredictor:
    """An unfitted member over a UniProt text file `name` holding `dat_text` (cache folder `cache`)."""
    dat = tmp_path / name
    dat.write_text(dat_text)
    options = {"threads": 1, "sensitivity": "sensitive", "max_target_seqs": 10, **kwargs}
    return ReferencePredictor(
        [{"format": "uniprot", "path": str(dat)}],
        tiny_ontology(tmp_path),
        write_obo(tmp_path),
        tmp_path / cache,
        **options,
    )


def reference(tmp_path, **kwargs) -> ReferencePredictor:
    # a second accession with HBA's exact sequence, carrying CC3: an identical sequence never votes
    text = uniprot_text() + uniprot_text([("HBA", "9606", [(CC3, "IDA")])]).replace("AC   HBA;", "AC   HBA2;")
    return uniprot_reference(tmp_path, text, "sprot.dat", "cache", **kwargs)


def pool(tmp_path) -> TrainSet:
    """A training pool that carries neither MF5 nor BP2 (only the reference does)."""
    from predictor_fixtures import labels

    return TrainSet(["UBQ"], labels=labels(["UBQ"], [[BP, BP1]]))


@pytest.mark.skipif(not HAS_DIAMOND, reason="diamond not installed")
def test_reference_member_excludes_self_and_transfers_reference_terms(tmp_path):
    predictor = reference(tmp_path).fit(pool(tmp_path))
    got = predictor.predict(ProteinSet(["HBA"], sequences=[SEQUENCES["HBA"]]))
    scores = dict(zip(got.terms, got.matrix.toarray()[0]))
    # own entry (BP1) and the identical HBA2 (CC3) never vote; HBB, the only other globin, votes alone
    assert scores.get(MF5) == pytest.approx(1.0) and scores.get(BP2) == pytest.approx(1.0)
    assert scores.get(CC3, 0) == 0 and set(predictor.hits["sseqid"]) == {"HBB"}
    evidence = predictor.hit_table()
    assert set(zip(evidence["reference"], evidence["term"], evidence["evidence"])) == {
        ("HBB", BP2, "IDA"),
        ("HBB", MF5, "IEA"),
    }
    assert evidence["identity"].between(30, 60).all()
    # the hook explain and the served model read: per term the hit carrying it and its evidence code
    hook = predictor.evidence("HBA", [MF5, BP2, CC3])
    assert [(h["protein"], h["evidence"]) for h in hook[MF5]] == [("HBB", "IEA")]
    assert [(h["protein"], h["evidence"]) for h in hook[BP2]] == [("HBB", "IDA")] and hook[CC3] == []
    # saved with its database and labels: the loaded member predicts the same
    loaded = Predictor.load(predictor.save(tmp_path / "model"), threads=1)
    again = loaded.predict(ProteinSet(["HBA"], sequences=[SEQUENCES["HBA"]]))
    np.testing.assert_allclose(again.reindex(terms=got.terms).matrix.toarray(), got.matrix.toarray())


@pytest.mark.skipif(not HAS_DIAMOND, reason="diamond not installed")
def test_reference_exclusion_policies_and_evidence_filter(tmp_path):
    query = ProteinSet(["HBA"], sequences=[SEQUENCES["HBA"]])
    open_ref = reference(tmp_path, exclude="none").fit(pool(tmp_path))
    scores = dict(zip(*(lambda tm: (tm.terms, tm.matrix.toarray()[0]))(open_ref.predict(query))))
    assert scores[BP1] > 0.5 and scores[CC3] > 0  # Kaggle: the query's own (electronic) entry votes
    # a training-pool protein (validation / out-of-fold) always loses its own entry, and hits above the cutoff
    held = reference(tmp_path, exclude="none", holdout_max_identity=40.0, holdout_ids=["HBA"]).fit(pool(tmp_path))
    assert held.predict(query).matrix.nnz == 0 and held.hits.empty  # HBB is ~43% identical to HBA
    experimental = reference(tmp_path, evidence="experimental").fit(pool(tmp_path))
    tm = experimental.predict(query)
    scores = dict(zip(tm.terms, tm.matrix.toarray()[0]))
    assert scores.get(BP2) == pytest.approx(1.0) and scores.get(MF5, 0) == 0  # MF5 is electronic only


@pytest.mark.skipif(not HAS_DIAMOND, reason="diamond not installed")
def test_queries_rule_covers_the_whole_input_however_it_is_batched(tmp_path):
    predictor = reference(tmp_path).fit(pool(tmp_path))
    alone = ProteinSet(["HBA"], sequences=[SEQUENCES["HBA"]])
    assert set(predictor.predict(alone).terms) >= {MF5, BP2}  # HBB, not a query of this call, votes
    both = predictor.predict(ProteinSet(["HBA", "HBB"], sequences=[SEQUENCES["HBA"], SEQUENCES["HBB"]]))
    assert both.reindex(proteins=["HBA"]).matrix.nnz == 0  # HBB is a query of the same call: it never votes
    # HBA scored in a batch of its own, out of the input [HBA, HBB] (a predict batch, shard or Ray actor)
    predictor.set_query_set(["HBA", "HBB"], [SEQUENCES["HBA"], SEQUENCES["HBB"]])
    assert predictor.predict(alone).matrix.nnz == 0 and predictor.hits.empty
    # an identical sequence under another accession counts as the same query
    predictor.set_query_set(["HBA", "OTHER"], [SEQUENCES["HBA"], SEQUENCES["HBB"]])
    assert predictor.predict(alone).matrix.nnz == 0


def test_unavailable_reference_is_named(tmp_path):
    from types import SimpleNamespace

    block = SimpleNamespace(
        use="auto", databases=({"format": "metastudent", "path": str(tmp_path / "none")},), executable="diamond"
    )
    assert "none not found" in unavailable(block) and "make reference" in unavailable(block)


def test_chain_and_ensemble_run_without_an_uninstalled_reference(tmp_path):
    from cafa_mlflow.config.params_file import load_params
    from cafa_mlflow.config.schema import Params
    from cafa_mlflow.predictors.registry import unavailable

    def reference_skipped(p):
        return unavailable("reference", p)

    from cafa_mlflow.workflows.ensemble import ensemble_members

    params = Params.from_dict(load_params(None))
    missing = params.with_overrides({"reference.databases": [{"format": "uniprot", "path": str(tmp_path / "x.dat")}]})
    assert "x.dat not found" in reference_skipped(missing)
    assert "reference" in missing.ensemble.members and "reference" not in ensemble_members(missing)
    assert reference_skipped(missing.with_overrides({"reference.use": "always"})) is None  # then it fails loudly
    assert reference_skipped(params.with_overrides({"reference.use": "never"})) == "reference.use is never"


@pytest.mark.skipif(not HAS_DIAMOND, reason="diamond not installed")
def test_reference_member_is_served_inside_an_ensemble(tmp_path):
    import mlflow
    import pandas as pd

    from cafa_mlflow.io.fasta import FastaRecord
    from cafa_mlflow.predictors.combine.blend import EnsemblePredictor
    from cafa_mlflow.predictors.naive import NaivePredictor
    from cafa_mlflow.serving import pyfunc as serving
    from cafa_mlflow.workflows.predict_job import prepare_model

    onto = tiny_ontology(tmp_path)
    members = {"naive": NaivePredictor(onto).fit(pool(tmp_path)), "reference": reference(tmp_path).fit(pool(tmp_path))}
    ensemble = EnsemblePredictor(members, onto)
    ensemble.weights = {a: {"naive": 0.0, "reference": 1.0} for a in ("BPO", "CCO", "MFO")}
    ensemble.term_aspect = {t: onto.aspect[onto.index[t]] for t in TERMS}
    folder = ensemble.save(tmp_path / "ensemble")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    try:
        mlflow.set_experiment("reference-serving")  # an experiment of this store, not one a former test made active
        with mlflow.start_run():
            info = serving.log_go_model(folder, write_obo(tmp_path), {"max_terms": 1500, "sig": 3, "min_score": 0.001})
        model = mlflow.pyfunc.load_model(info.model_uri)
        out = model.predict(pd.DataFrame({"protein": ["HBA"], "sequence": [SEQUENCES["HBA"]]}))
        both = model.predict(
            pd.DataFrame({"protein": ["HBA", "HBB"], "sequence": [SEQUENCES["HBA"], SEQUENCES["HBB"]]})
        )
        # `cafa predict` names the whole FASTA first: HBA in a batch of its own then scores as in one call
        prepare_model(model, [FastaRecord(p, SEQUENCES[p], None) for p in ("HBA", "HBB")], threads=1)
        batched = model.predict(pd.DataFrame({"protein": ["HBA"], "sequence": [SEQUENCES["HBA"]]}))
    finally:
        mlflow.set_tracking_uri(None)
    got = dict(zip(out["term"], out["score"]))
    assert got.get(MF5) == pytest.approx(1.0) and got.get(BP1) == pytest.approx(1.0)  # BP1 via HBB's BP2
    assert CC3 not in got  # the identical HBA2 entry still never votes once served
    in_both = both[both["protein"] == "HBA"].reset_index(drop=True)
    assert MF5 not in set(in_both["term"])  # HBB is a query of the call: no vote
    pd.testing.assert_frame_equal(batched.reset_index(drop=True), in_both)


def echo_reference(tmp_path, accession: str = "HBA", **kwargs) -> ReferencePredictor:
    """A 2014-style reference: the query's own entry (`accession`, HBA's sequence) knows BP1 experimentally, and
    its ortholog HBB carries a copy of it (ISS) besides its own MF5."""
    entries = [(accession, "9606", [(BP1, "IDA")]), ("HBB", "9606", [(BP1, "ISS"), (MF5, "IEA")])]
    text = uniprot_text([("HBA", *entries[0][1:]), entries[1]]).replace("AC   HBA;", f"AC   {accession};")
    return uniprot_reference(tmp_path, text, "echo.dat", "c", **kwargs)


@pytest.mark.skipif(not HAS_DIAMOND, reason="diamond not installed")
def test_holdout_queries_lose_the_echo_of_their_own_entry(tmp_path):
    query = ProteinSet(["HBA"], sequences=[SEQUENCES["HBA"]])

    def scores(predictor):
        tm = predictor.predict(query)
        return dict(zip(tm.terms, tm.matrix.toarray()[0].round(6)))

    # a test query (not in the training pool): HBB's copy of BP1 votes, whatever the rule
    shipped = echo_reference(tmp_path, holdout_own_terms="drop_direct").fit(pool(tmp_path))
    assert scores(shipped)[BP1] == 1.0 and scores(shipped)[MF5] == 1.0
    # a validation / out-of-fold query: its own entry's direct term BP1 is not transferred, MF5 still is
    held = echo_reference(tmp_path, holdout_own_terms="drop_direct", holdout_ids=["HBA"]).fit(pool(tmp_path))
    got = scores(held)
    assert got.get(BP1, 0) == 0 and got[MF5] == 1.0 and got[BP] == 1.0
    feats = held.term_features()  # the hit statistics carry what the vote transferred: no BP1
    carried = dict(zip(feats.terms, feats.term["n_hits"].toarray()[0]))
    assert carried.get(BP1, 0) == 0 and carried[MF5] == 1 and feats.protein["qlen"][0] == len(SEQUENCES["HBA"])
    kept = echo_reference(tmp_path, holdout_ids=["HBA"]).fit(pool(tmp_path))  # default `vote`: no correction
    assert scores(kept)[BP1] == 1.0
    # saved and loaded, the rule stays
    loaded = Predictor.load(held.save(tmp_path / "model"), threads=1)
    assert loaded.holdout_own_terms == "drop_direct" and scores(loaded).get(BP1, 0) == 0


@pytest.mark.skipif(not HAS_DIAMOND, reason="diamond not installed")
def test_cafa_target_headers_and_id_maps_name_the_own_entry(tmp_path):
    from cafa_mlflow.io.id_map import read_id_map

    mutated = SEQUENCES["HBA"][:10] + "W" + SEQUENCES["HBA"][11:]  # not identical: only the accession finds it
    predictor = echo_reference(tmp_path, accession="P69905").fit(pool(tmp_path))

    def voted(fasta_text, **kwargs):
        fasta = tmp_path / "targets.fasta"
        fasta.write_text(fasta_text)
        predictor.accessions = dict(kwargs.get("accessions", {}))
        predictor.predict(ProteinSet(["T96060000001"], fasta=fasta, sequences=[mutated]))
        return set(predictor.hits["sseqid"])

    assert voted(f">T96060000001\n{mutated}\n") == {"P69905", "HBB"}  # no accession: its own entry votes
    assert voted(f">T96060000001 P69905\n{mutated}\n") == {"HBB"}  # CAFA style header: found by accession
    id_map = tmp_path / "map.tsv"
    id_map.write_text("target\taccession\nT96060000001\tP69905\n")
    assert read_id_map(id_map) == {"T96060000001": "P69905"}
    assert voted(f">T96060000001\n{mutated}\n", accessions=read_id_map(id_map)) == {"HBB"}
    # the whole input of a `cafa predict` call (set_query_set): another target's entry never votes either
    predictor.accessions = {}
    predictor.set_query_set(["T1", "T2"], [mutated, SEQUENCES["UBQ"]], ["Q00001", "P69905"])
    predictor.predict(ProteinSet(["T1"], sequences=[mutated]))
    assert set(predictor.hits["sseqid"]) == {"HBB"}


def test_the_reference_key_is_hashed_once_per_unchanged_file(tmp_path, monkeypatch):
    """A member is fitted five times a step: its cache key is computed once, and again when a file changes."""
    from cafa_mlflow.data import reference as data_reference

    dat = tmp_path / "sprot.dat"
    dat.write_text(uniprot_text())
    obo = write_obo(tmp_path)
    hashed = []
    real = data_reference.hash_file
    monkeypatch.setattr(data_reference, "hash_file", lambda h, path: hashed.append(Path(path).name) or real(h, path))
    spec = [{"format": "uniprot", "path": str(dat)}]
    first = data_reference.reference_key(spec, "all", obo)
    assert data_reference.reference_key(spec, "all", obo) == first and hashed == ["sprot.dat", obo.name]
    assert data_reference.reference_key(spec, "experimental", obo) != first  # the filter is part of the key
    dat.write_text(uniprot_text(ENTRIES[:2]))  # another content: hashed again, another key
    assert data_reference.reference_key(spec, "all", obo) != first and hashed.count("sprot.dat") == 3


@pytest.mark.skipif(not HAS_DIAMOND, reason="diamond not installed")
def test_the_prepared_database_is_the_one_build_db_makes_of_its_fasta(tmp_path):
    """The reference's DIAMOND database is made from the FASTA it writes, without reading it back: the same bytes
    as data.diamond.build_db of that FASTA (the path the reference took before)."""
    from cafa_mlflow.data import diamond
    from cafa_mlflow.io.fasta import write_fasta

    fasta = tmp_path / "reference.fasta"
    write_fasta(fasta, list(SEQUENCES.items()))
    made = diamond.make_db(fasta, tmp_path / "reference", 1, diamond.diamond_binary(), "makedb")
    built = diamond.build_db(fasta, tmp_path / "cache")
    assert made == tmp_path / "reference.dmnd" and made.read_bytes() == built.read_bytes()
