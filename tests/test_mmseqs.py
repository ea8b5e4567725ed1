"""The MMseqs2 search engine: hits on a tiny database, a protein's hits independent of the rest of its batch, the
params key reaching the search (homology and reference), saved with the member, and one line when `mmseqs` is
missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from predictor_fixtures import SEQUENCES, labels, write_fasta

from cafa_mlflow.config.params_file import load_params
from cafa_mlflow.config.schema import Params
from cafa_mlflow.data import diamond, mmseqs
from cafa_mlflow.data.search_engine import SearchEngine
from cafa_mlflow.errors import ConfigError, MissingToolError
from cafa_mlflow.predictors.base import Predictor, ProteinSet, TrainSet
from cafa_mlflow.predictors.homology import HomologyPredictor
from cafa_mlflow.serving import model_environment

HAS_TOOLS = shutil.which("mmseqs") is not None and shutil.which("diamond") is not None
needs_tools = pytest.mark.skipif(not HAS_TOOLS, reason="mmseqs or diamond not installed")
ENGINE = SearchEngine("mmseqs2", 7.5, 300)


@pytest.fixture(autouse=True)
def user_cache(tmp_path, monkeypatch):
    """Loaded members keep their indexes in the user cache: a fresh one per test."""
    monkeypatch.setenv("CAFA_CACHE_DIR", str(tmp_path / "user-cache"))


def tiny_index(tmp_path: Path, index: bool = True) -> Path:
    fasta = write_fasta(tmp_path / "db.fasta", list(SEQUENCES))
    dmnd = diamond.build_db(fasta, tmp_path / "cache")
    return mmseqs.build_index(dmnd, tmp_path / "cache", 7.5, index=index)


@needs_tools
def test_hits_on_a_tiny_database_are_the_diamond_table(tmp_path):
    index = tiny_index(tmp_path)
    hits = mmseqs.search(index, write_fasta(tmp_path / "q.fasta", ["HBA", "LYZ"]), sensitivity=7.5)
    assert list(hits.columns) == list(diamond.HIT_COLUMNS)
    pairs = dict(zip(zip(hits["qseqid"], hits["sseqid"]), hits["pident"]))
    assert pairs[("HBA", "HBA")] == 100.0 and pairs[("LYZ", "LYZ")] == 100.0
    assert 40 < pairs[("HBA", "HBB")] < 50  # identity in %, as DIAMOND gives it
    assert ("LYZ", "HBB") not in pairs and hits["bitscore"].is_monotonic_decreasing
    # the extra columns the hit features and the near-identity rule read, in DIAMOND's names and units
    more = mmseqs.search(
        index, tmp_path / "q.fasta", sensitivity=7.5, columns=(*diamond.HIT_COLUMNS, "qcovhsp", "qlen")
    )
    self_hit = more[(more["qseqid"] == "HBA") & (more["sseqid"] == "HBA")].iloc[0]
    assert self_hit["qcovhsp"] == pytest.approx(100.0) and self_hit["qlen"] == len(SEQUENCES["HBA"])
    # built once: a second call reuses the cached folder as it is
    stamp = (index.parent / "checksums.json").stat().st_mtime_ns
    assert tiny_index(tmp_path) == index and (index.parent / "checksums.json").stat().st_mtime_ns == stamp


@needs_tools
def test_a_proteins_hits_do_not_depend_on_its_batch(tmp_path):
    index = tiny_index(tmp_path)
    alone = mmseqs.search(index, write_fasta(tmp_path / "one.fasta", ["HBA"]), sensitivity=7.5)
    batch = mmseqs.search(index, write_fasta(tmp_path / "all.fasta", ["LYZ", "HBB", "HBA", "UBQ"]), sensitivity=7.5)
    pd.testing.assert_frame_equal(batch[batch["qseqid"] == "HBA"].reset_index(drop=True), alone)
    # without the precomputed k-mer index (the chain's batch searches) the hits are the same
    plain = tiny_index(tmp_path, index=False)
    assert plain != index and not (plain.parent / "targets.idx").exists()
    pd.testing.assert_frame_equal(mmseqs.search(plain, tmp_path / "all.fasta", sensitivity=7.5), batch)


def homology_params(tmp_path: Path, **keys) -> Params:
    overrides = {"homology.out": str(tmp_path / "homology"), "homology.threads": 1, **keys}
    return Params.from_dict(load_params(None, overrides))


@needs_tools
def test_the_engine_key_reaches_the_search_and_is_saved(tmp_path, monkeypatch):
    params = homology_params(tmp_path, **{"homology.engine": "mmseqs2", "homology.mmseqs_sensitivity": 6.0})
    predictor = HomologyPredictor.from_params(params.homology, None)
    calls = []
    real = mmseqs.search
    monkeypatch.setattr(mmseqs, "search", lambda *a, **k: calls.append(a) or real(*a, **k))
    train = TrainSet(
        ["HBB", "LYZ"],
        fasta=write_fasta(tmp_path / "train.fasta", ["HBB", "LYZ"]),
        labels=labels(["HBB", "LYZ"], [["GO:0000001"], ["GO:0000004"]]),
    )
    predictor.fit(train)
    assert predictor.search_db.parent.parent == tmp_path / "homology"  # beside its DIAMOND database, no index
    assert not (predictor.search_db.parent / "targets.idx").exists()
    queries = ProteinSet(["HBA", "UBQ"], sequences=[SEQUENCES["HBA"], SEQUENCES["UBQ"]])
    got = predictor.predict(queries)
    assert calls and calls[0][3] == 6.0 and calls[0][5] == params.homology.mmseqs_max_seqs  # -s, --max-seqs
    assert set(predictor.hits["sseqid"]) == {"HBB"}
    folder = predictor.save(tmp_path / "model")
    # the served model declares MMseqs2 and a machine without it is told in one line what to install
    needs = model_environment.system_requirements({"homology"}, model_environment.mmseqs_users(folder))
    assert [n["name"] for n in needs] == ["DIAMOND", "MMseqs2"] and needs[1]["needed_by"] == ["homology"]
    with monkeypatch.context() as patch:
        patch.setattr(model_environment.shutil, "which", lambda name: None if name == "mmseqs" else name)
        assert "`sudo apt-get install mmseqs2`" in model_environment.system_problem(needs)
    loaded = Predictor.load(folder, threads=1)
    assert loaded.engine == predictor.engine and (loaded.search_db.parent / "targets.idx").is_file()  # user cache
    np.testing.assert_array_equal(loaded.predict(queries).matrix.toarray(), got.matrix.toarray())
    # the same proteins scored alone give the same scores as in the batch
    alone = predictor.predict(ProteinSet(["HBA"], sequences=[SEQUENCES["HBA"]]))
    np.testing.assert_array_equal(alone.matrix.toarray()[0], got.matrix.toarray()[0])


def test_a_missing_mmseqs_is_one_line_naming_the_package(tmp_path):
    with pytest.raises(
        MissingToolError, match=r"^MMseqs2 executable 'no-mmseqs' not found on PATH; .*apt-get install mmseqs2"
    ) as err:
        SearchEngine("mmseqs2", mmseqs_executable="no-mmseqs").prepare(tmp_path / "x.dmnd", tmp_path, 1, "diamond")
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="engine='blast'"):
        SearchEngine("blast")


@needs_tools
def test_the_reference_member_searches_with_its_engine(tmp_path):
    from test_reference import pool, reference

    query = ProteinSet(["HBA"], sequences=[SEQUENCES["HBA"]])
    with_diamond = reference(tmp_path).fit(pool(tmp_path))
    with_mmseqs = reference(tmp_path, engine=ENGINE).fit(pool(tmp_path))
    assert (with_mmseqs.search_db.parent / "targets.idx").is_file()  # indexed, in the user cache
    got, expected = with_mmseqs.predict(query), with_diamond.predict(query)
    assert set(with_mmseqs.hits["sseqid"]) == {"HBB"}  # own entry and the identical HBA2 dropped, as with DIAMOND
    np.testing.assert_allclose(got.reindex(terms=expected.terms).matrix.toarray(), expected.matrix.toarray())
    loaded = Predictor.load(with_mmseqs.save(tmp_path / "model"), threads=1)
    assert loaded.engine == ENGINE and loaded.search_db == with_mmseqs.search_db  # one index per reference content


@needs_tools
def test_the_index_key_hashes_an_unchanged_database_once(tmp_path, monkeypatch):
    fasta = write_fasta(tmp_path / "db.fasta", list(SEQUENCES))
    dmnd = diamond.build_db(fasta, tmp_path / "cache")
    binary = mmseqs.mmseqs_binary()
    hashed = []
    real = mmseqs.hash_file
    monkeypatch.setattr(mmseqs, "hash_file", lambda h, path: hashed.append(path) or real(h, path))
    key = mmseqs.index_key(dmnd, 7.5, binary)
    assert mmseqs.index_key(dmnd, 7.5, binary) == key and len(hashed) == 1
    assert mmseqs.index_key(dmnd, 5.7, binary) != key and mmseqs.index_key(dmnd, 7.5, binary, index=False) != key
    other = diamond.build_db(write_fasta(tmp_path / "two.fasta", ["HBA", "HBB"]), tmp_path / "cache")
    dmnd.write_bytes(other.read_bytes())  # the same path, another database: hashed again, another key
    assert mmseqs.index_key(dmnd, 7.5, binary) != key and len(hashed) == 4


@needs_tools
def test_the_saved_homology_members_index_is_built_once_and_used_for_its_own_test(tmp_path):
    """The chain's final fit builds the index that loading the saved member (the ensemble step) builds: its test
    scores are the same as without it, and the loaded copy finds it instead of building it again."""
    params = homology_params(tmp_path, **{"homology.engine": "mmseqs2"})
    ids = ["HBB", "LYZ", "UBQ"]
    train = TrainSet(
        ids,
        fasta=write_fasta(tmp_path / "train.fasta", ids),
        labels=labels(ids, [["GO:0000001"], ["GO:0000004"], ["GO:0000001"]]),
    )
    queries = ProteinSet(["HBA", "UBQ"], sequences=[SEQUENCES["HBA"], SEQUENCES["UBQ"]])
    plain = HomologyPredictor.from_params(params.homology, None).fit(train)
    before = plain.predict(queries)
    final = HomologyPredictor.from_params(params.homology, None).fit(train)
    final.prepare_loading()
    index = final.search_db.parent / "targets.idx"
    assert index.is_file() and index.parent.parent == tmp_path / "user-cache" / "mmseqs"
    np.testing.assert_array_equal(final.predict(queries).matrix.toarray(), before.matrix.toarray())
    pd.testing.assert_frame_equal(final.hits, plain.hits)
    stamp = index.stat().st_mtime_ns
    loaded = Predictor.load(final.save(tmp_path / "model"), threads=1)
    assert loaded.search_db == final.search_db and index.stat().st_mtime_ns == stamp
