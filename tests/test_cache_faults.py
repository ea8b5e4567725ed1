"""Damaged caches and product files, unknown parameter values and submission format rules, plus guards for
inputs a careless user gives that already work: each is caught before use, named in one line, and a cache is
prepared again by the step that owns it (byte-identical)."""

from __future__ import annotations

import ast
import gzip
import json
import logging
import os
import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from predictor_fixtures import SEQUENCES, labels, tiny_ontology
from test_reference import gaf_text, pool, reference

from cafa_mlflow.config.schema import EVIDENCE_FILTERS, MEMBERS, Params, load_config
from cafa_mlflow.data import reference as prepared_reference
from cafa_mlflow.data.reference import CACHE_FILES, training_pool
from cafa_mlflow.errors import ConfigError, InputError
from cafa_mlflow.go.labels import read_submission, save_term_matrix
from cafa_mlflow.io import integrity
from cafa_mlflow.io.fasta import read_fasta
from cafa_mlflow.io.readback import load_npy, load_npz, read_json, read_parquet, read_yaml
from cafa_mlflow.io.reference_formats import read_gaf
from cafa_mlflow.io.submission_check import CHECKS, validate_submission
from cafa_mlflow.io.text import atomic_dir, seal
from cafa_mlflow.predictors import registry
from cafa_mlflow.predictors.base import Predictor, ProteinSet
from cafa_mlflow.predictors.naive import NaivePredictor
from cafa_mlflow.predictors.reference import ReferencePredictor
from pipelines.cli import main as cafa
from tests.cafa_fixtures import forget_mlflow_run, snapshot, write

needs_diamond = pytest.mark.skipif(shutil.which("diamond") is None, reason="diamond not installed")
REPO = Path(__file__).resolve().parent.parent
QUERY = ProteinSet(["HBA"], sequences=[SEQUENCES["HBA"]])


def flip(path: Path, at: float = 0.5) -> None:
    """Flip one byte in place (same size, as a bad disk or a careless edit leaves a file)."""
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0xFF
    path.write_bytes(bytes(data))


def one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text and "Traceback" not in text
    return text


def fresh(tmp_path: Path) -> ReferencePredictor:
    prepared_reference._LOADED.clear()  # a new process: nothing loaded yet
    return reference(tmp_path).fit(pool(tmp_path))


# ---- 1. the prepared reference cache is verified before use and prepared again ------------------------


DAMAGE = {
    "flipped database": lambda f: flip(f / "reference.dmnd"),
    "flipped labels": lambda f: flip(f / "labels.npz"),
    "flipped proteins table": lambda f: flip(f / "proteins.parquet"),
    "flipped annotations": lambda f: flip(f / "annotations.parquet", 0.3),
    "missing labels": lambda f: (f / "labels.npz").unlink(),
    "missing database": lambda f: (f / "reference.dmnd").unlink(),
    "missing manifest": lambda f: (f / "manifest.json").unlink(),
    "missing checksum list": lambda f: (f / integrity.SUMS).unlink(),
    # kill -9 of an older build that wrote in place: some files, no manifest, no checksums
    "half-written": lambda f: [(f / n).unlink() for n in ("manifest.json", "labels.npz", integrity.SUMS)],
}


@needs_diamond
@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_reference_cache_is_named_and_prepared_again_byte_identical(tmp_path, damage, caplog):
    first = fresh(tmp_path)
    folder, scores = first.ref.folder, first.predict(QUERY)
    good = {name: (folder / name).read_bytes() for name in CACHE_FILES}
    DAMAGE[damage](folder)
    with caplog.at_level(logging.WARNING, logger="cafa_mlflow.io.integrity"):
        again = fresh(tmp_path)
    named = [r.getMessage() for r in caplog.records if r.name == "cafa_mlflow.io.integrity"]
    assert len(named) == 1 and str(folder) in named[0] and "prepared again" in named[0], named
    assert {name: (folder / name).read_bytes() for name in CACHE_FILES} == good  # rebuilt byte-identical
    assert integrity.verify_folder(folder)
    again_scores = again.predict(QUERY)
    assert again_scores.terms == scores.terms and (again_scores.matrix != scores.matrix).nnz == 0


@needs_diamond
def test_an_intact_cache_is_reused_without_a_warning(tmp_path, caplog):
    folder = fresh(tmp_path).ref.folder
    stamp = {n: (folder / n).stat().st_mtime_ns for n in CACHE_FILES}
    caplog.clear()
    with caplog.at_level(logging.INFO):
        fresh(tmp_path)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or "prepared in" in r.getMessage()]
    assert {n: (folder / n).stat().st_mtime_ns for n in CACHE_FILES} == stamp


@needs_diamond
@pytest.mark.parametrize("damage", ["flip", "delete"])
def test_damaged_homology_database_cache_is_built_again(tmp_path, damage, caplog):
    from cafa_mlflow.data.diamond import build_db

    fasta = write(tmp_path / "train.fasta", "".join(f">{a}\n{s}\n" for a, s in SEQUENCES.items()))
    db = build_db(fasta, tmp_path / "cache")
    good = db.read_bytes()
    flip(db) if damage == "flip" else db.unlink()
    with caplog.at_level(logging.WARNING, logger="cafa_mlflow.io.integrity"):
        assert build_db(fasta, tmp_path / "cache") == db
    named = [r.getMessage() for r in caplog.records if r.name == "cafa_mlflow.io.integrity"]
    assert len(named) == 1 and "train.dmnd" in named[0]
    assert db.read_bytes() == good


@needs_diamond
def test_a_member_never_records_the_checksum_of_damaged_data(tmp_path):
    predictor = fresh(tmp_path)
    flip(predictor.ref.folder / "reference.dmnd")  # damaged after the fit, before the save
    with pytest.raises(InputError, match=r"reference.dmnd: damaged .*cafa member --predictor reference") as err:
        predictor.save(tmp_path / "model")
    one_line(err.value)
    assert not (tmp_path / "model" / integrity.SUMS).exists()
    # fitted again from the damaged cache: prepared again first, so the saved checksum is the good file's
    refit = fresh(tmp_path)
    saved = refit.save(tmp_path / "model2")
    recorded = json.loads((saved / integrity.SUMS).read_text())["files"]["reference.dmnd"]["sha256"]
    assert recorded == integrity.digest(refit.ref.folder / "reference.dmnd")


@needs_diamond
@pytest.mark.parametrize("name", ["proteins.parquet", "labels.npz", "reference.dmnd", "root_columns.npy"])
def test_damaged_saved_reference_member_is_one_line(tmp_path, name):
    saved = fresh(tmp_path).save(tmp_path / "model")
    target = saved / name
    data = target.read_bytes()
    target.unlink()  # a new file (not the inode the cache shares through a hard link)
    target.write_bytes(data[: len(data) // 2])
    prepared_reference._LOADED.clear()
    with pytest.raises(InputError, match=rf"{target}: damaged") as err:
        Predictor.load(saved, threads=1)
    one_line(err.value)


@needs_diamond
def test_unsealed_reference_folder_with_a_damaged_table_is_one_line(tmp_path):
    """A folder without checksums (an older version's) is read unchecked: a damaged table still gives one
    line naming it and the command that prepares it again, never a traceback."""
    saved = fresh(tmp_path).save(tmp_path / "model")
    (saved / integrity.SUMS).unlink()
    (saved / "proteins.parquet").unlink()
    (saved / "proteins.parquet").write_bytes(b"PAR1 not a table")
    prepared_reference._LOADED.clear()
    with pytest.raises(InputError, match=r"proteins.parquet: damaged .*cafa member --predictor reference") as err:
        ReferencePredictor.load_files(saved, threads=1)
    one_line(err.value)
    (saved / "labels.npz").unlink()
    with pytest.raises(InputError, match=r"labels.npz: missing; run `cafa member --predictor reference` again"):
        ReferencePredictor.load_files(saved, threads=1)


def test_from_params_reads_no_file_and_takes_its_block(tmp_path, monkeypatch):
    params = load_config()
    onto = tiny_ontology(tmp_path)

    def no_io(*args, **kwargs):
        raise AssertionError("from_params read a file")

    monkeypatch.setattr(pd, "read_parquet", no_io)
    predictor = ReferencePredictor.from_params(params.reference, onto, params.data.obo, ["P1", "P2"])
    assert predictor.holdout == {"P1", "P2"} and predictor.exclude == params.reference.exclude
    assert predictor.cache_dir == Path(params.reference.out)


def test_registry_gives_the_reference_member_the_training_pool(tmp_path):
    prep = tmp_path / "prepared"
    prep.mkdir()
    pd.DataFrame({"protein": ["A", "B"], "length": [3, 4]}).to_parquet(prep / "proteins.parquet", index=False)
    params = load_config().with_overrides({"prepare.out": str(prep)})
    predictor = registry.build("reference", params, tiny_ontology(tmp_path))
    assert predictor.holdout == {"A", "B"}
    assert training_pool(tmp_path / "none") == []
    (prep / "proteins.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match=r"proteins.parquet: damaged .*cafa prepare") as err:
        training_pool(prep)
    one_line(err.value)


# ---- 4. readers of product-written files: one line naming the file -----------------------------------


def _npz(path: Path) -> Path:
    save_term_matrix(path, labels(["A"], [["GO:0000001"]]))
    return path


READERS = {
    "missing json": (lambda p: None, read_json, "x.json", r"x.json: missing; fix it"),
    "truncated json": (lambda p: p.write_text('{"a": 1'), read_json, "x.json", r"x.json: damaged"),
    "not parquet": (lambda p: p.write_text("protein\nA\n"), read_parquet, "t.parquet", r"t.parquet: damaged"),
    "cut npy": (lambda p: p.write_bytes(b"\x93NUMPY\x01\x00v\x00"), load_npy, "r.npy", r"r.npy: damaged"),
    "cut npz": (lambda p: p.write_bytes(_npz(p).read_bytes()[:40]), load_npz, "l.npz", r"l.npz: damaged"),
    "bad yaml": (lambda p: p.write_text("a: [1, 2\n"), read_yaml, "b.yaml", r"b.yaml: damaged"),
}


@pytest.mark.parametrize("case", READERS)
def test_damaged_product_file_is_one_input_error_naming_it(tmp_path, case):
    make, read, name, message = READERS[case]
    path = tmp_path / name
    make(path)
    with pytest.raises(InputError, match=message) as err:
        read(path, "fix it")
    assert one_line(err.value).endswith("fix it.")


def test_missing_key_and_column_name_the_file(tmp_path):
    path = write(tmp_path / "config.json", json.dumps({"a": {"b": 1}, "rows": [{"c": 2}]}))
    config = read_json(path, "run `cafa x` again")
    assert config["a"]["b"] == 1 and config.get("z") is None and json.loads(json.dumps(config)) == config
    for get in (lambda c: c["k"], lambda c: c["a"]["k"], lambda c: c["rows"][0]["k"]):
        with pytest.raises(InputError, match=r"config.json: has no 'k' entry .*run `cafa x` again"):
            get(config)
    table = tmp_path / "t.parquet"
    pd.DataFrame({"protein": ["A"]}).to_parquet(table)
    with pytest.raises(InputError, match=r"t.parquet: .*seq_hash"):
        read_parquet(table, columns=["protein", "seq_hash"])


def test_saved_model_with_a_config_lacking_a_key_is_one_line(tmp_path):
    """A saved predictor whose config.json lacks a key (written by another version: no checksum list)."""
    folder = NaivePredictor(tiny_ontology(tmp_path)).fit(pool(tmp_path)).save(tmp_path / "naive")
    config = json.loads((folder / "config.json").read_text())
    del config["top_k"]
    (folder / "config.json").write_text(json.dumps(config))
    (folder / integrity.SUMS).unlink()
    with pytest.raises(InputError, match=r"naive/config.json: has no 'top_k' entry") as err:
        Predictor.load(folder)
    one_line(err.value)
    (folder / "predictor.json").write_text("{not json")
    with pytest.raises(InputError, match=r"predictor.json: damaged"):
        Predictor.load(folder)


def test_reusable_cache_names_a_damaged_folder_once(tmp_path, caplog):
    folder = tmp_path / "cache"
    assert not integrity.reusable_cache(folder, ["a.txt"])  # nothing there: built, no warning
    with atomic_dir(folder) as tmp:
        (tmp / "a.txt").write_text("abc\n")
    assert integrity.reusable_cache(folder, ["a.txt"])
    (folder / "a.txt").write_text("abd\n")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cafa_mlflow.io.integrity"):
        assert not integrity.reusable_cache(folder, ["a.txt"])
    named = [r.getMessage() for r in caplog.records if r.name == "cafa_mlflow.io.integrity"]
    assert len(named) == 1 and "\n" not in named[0] and "a.txt: damaged (sha256 checksum differs" in named[0]
    seal(folder)
    assert not integrity.reusable_cache(folder, ["a.txt", "b.txt"])  # a required file was never written


# ---- 2. unknown enum values in any block are refused on entry -----------------------------------------

UNKNOWN = [
    ({"reference.databases": [{"format": "swissprot", "path": "x"}]}, r"reference.databases\[0\].format='swissprot': "
     r"use one of uniprot, gaf, cafa, metastudent"),
    ({"reference.databases": [{"format": "uniprot", "pth": "x"}]}, r"databases\[0\].pth: unknown key; an entry has"),
    ({"reference.databases": [{"path": "x"}]}, r"databases\[0\].format: missing"),
    ({"reference.databases": [{"format": "cafa", "fasta": "a", "terms": "b", "evidence": "experimental"}]},
     r"databases\[0\].evidence='experimental': use one of EXP, IDA"),
    ({"reference.evidence": ["experimental", "IEX"]}, r"reference.evidence='IEX': use one of all, experimental"),
    ({"reference.evidence": "experimentl"}, r"reference.evidence='experimentl': use one of all"),
    ({"ensemble.members": ["naive", "homolgy"]}, r"ensemble.members='homolgy': use one of naive, homology"),
    ({"tune.hyperband_max_resource": "max"}, r"hyperband_max_resource='max': use a number .*or one of auto"),
    ({"embed.strategy": "zigzag"}, r"embed.strategy='zigzag': use one of balanced"),
]  # fmt: skip


@pytest.mark.parametrize("use", ["auto", "always", "never"])
@pytest.mark.parametrize(("override", "message"), UNKNOWN)
def test_unknown_enum_values_are_refused_whatever_use_says(override, message, use):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(overrides={**override, "reference.use": use})
    one_line(err.value)


def test_every_allowed_value_still_passes():
    params = load_config()
    for value in EVIDENCE_FILTERS + ("iea", "Ida"):
        params.with_overrides({"reference.evidence": value})
    params.with_overrides({"reference.evidence": list(EVIDENCE_FILTERS), "tune.hyperband_max_resource": 7})
    for fmt in ("uniprot", "gaf", "cafa", "metastudent"):
        params.with_overrides({"reference.databases": [{"format": fmt, "path": "p", "evidence": "exp"}]})
    assert set(MEMBERS) == set(registry.MEMBER_KINDS)  # the schema's list is the registry's


def test_cli_refuses_a_misspelt_format_before_any_work_and_keeps_the_fitted_member(tmp_path, monkeypatch, capsys):
    import yaml

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["outputs"]["predictions"] = str(tmp_path / "pred")
    raw["reference"]["databases"] = [{"format": "swissprot", "path": str(tmp_path / "sprot.dat")}]
    params_file = write(tmp_path / "params.yaml", yaml.safe_dump(raw))
    member = tmp_path / "pred" / "reference"
    with atomic_dir(member) as folder:  # a fitted member from before
        (folder / "model").mkdir()
        (folder / "model" / "predictor.json").write_text("{}\n")
    before = snapshot(member)
    monkeypatch.setenv("CAFA_PARAMS", str(params_file))
    assert cafa(["member", "--predictor", "reference", "--reference-use", "never"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "format='swissprot': use one of uniprot" in err
    assert snapshot(member) == before


def test_a_skipped_member_never_replaces_a_fitted_one(tmp_path, capsys):
    from cafa_mlflow.workflows.member import fit_member

    params = load_config(overrides={"outputs.predictions": str(tmp_path / "pred"), "reference.use": "never"})
    member = tmp_path / "pred" / "reference"
    with atomic_dir(member) as folder:
        (folder / "model").mkdir()
        (folder / "model" / "predictor.json").write_text("{}\n")
    before = snapshot(member)
    assert fit_member("reference", params) == {}
    assert snapshot(member) == before and "the one fitted before is kept" in capsys.readouterr().out
    other = params.with_overrides({"outputs.predictions": str(tmp_path / "new")})
    assert fit_member("reference", other) == {}  # nothing fitted there yet: the note DVC's stage needs
    assert (tmp_path / "new" / "reference" / "SKIPPED").read_text() == "reference.use is never\n"


def test_a_skipped_member_says_so_and_claims_no_predictions(tmp_path, monkeypatch, capsys):
    """`cafa member` of a member that cannot run prints its notice only, not a `predictions in ...` line."""
    forget_mlflow_run(monkeypatch)
    monkeypatch.chdir(tmp_path)  # the run goes to a store of its own
    pred = str(tmp_path / "pred")
    flags = ["--reference-use", "never", "--outputs-predictions", pred, "--tracking-uri", f"sqlite:///{tmp_path}/m.db"]
    try:
        assert cafa(["member", "--predictor", "reference", *flags, "--tracking-system-metrics", "false"]) == 0
    finally:
        mlflow.set_tracking_uri(None)  # the command set its store process-wide: later tests choose their own
    out = capsys.readouterr().out
    assert "notice: the reference member is skipped (reference.use is never)" in out
    assert "predictions in" not in out


# ---- 3. validate-submission applies evaluate's format rules -------------------------------------------

NOT_SUBMISSIONS = {
    "space-separated": ("P1 GO:0000001 0.5\nP2 GO:0000002 0.3\n", {"columns": 2}),
    "one word": ("hello\n", {"columns": 1}),
    "comma-separated": ("P1,GO:0000001,0.5\n", {"columns": 1}),
    "only Text lines": ("P1\tText\t0.5\tabout it\n", {"no_lines": 1}),
}


@pytest.mark.parametrize("case", NOT_SUBMISSIONS)
def test_a_file_evaluate_refuses_is_not_a_valid_submission(tmp_path, case, capsys):
    text, counts = NOT_SUBMISSIONS[case]
    path = write(tmp_path / "sub.tsv", text)
    with pytest.raises(InputError):
        read_submission(path)  # what `cafa evaluate` reads
    assert dict(validate_submission(path).counts) == counts
    assert cafa(["validate-submission", str(path)]) == 1
    assert "INVALID" in capsys.readouterr().out


def test_tab_less_lines_after_the_last_block_are_reported(tmp_path):
    good = "".join(f"P{i}\tGO:{i:07d}\t0.5\n" for i in range(200))
    path = write(tmp_path / "sub.tsv", good + "".join(f"Q{i} GO:0000001 0.5\n" for i in range(300)))
    for block_bytes in (1 << 12, 1 << 26):
        found = validate_submission(path, block_bytes=block_bytes)
        assert dict(found.counts) == {"columns": 300} and found.n_lines == 200
        assert [v.line for v in found[:2]] == [201, 202]


def test_valid_submission_still_ok(tmp_path, capsys):
    path = write(tmp_path / "sub.tsv", "P1\tGO:0000001\t0.5\nP1\tGO:0000002\t0.4\nP2\tText\t0.1\tx\n")
    assert cafa(["validate-submission", str(path)]) == 0
    assert capsys.readouterr().out == f"OK {path}: 1 proteins, 2 lines (1 Text lines)\n"


def test_submission_rules_are_a_table_of_small_named_checks():
    assert [c.__name__ for c in CHECKS] == [
        "check_scores",
        "check_contiguous",
        "check_duplicates",
        "check_term_count",
        "check_sorted",
        "check_known_terms",
    ]


MY_FILES = [
    "cafa_mlflow/data/reference.py",
    "cafa_mlflow/predictors/reference.py",
    "cafa_mlflow/io/integrity.py",
    "cafa_mlflow/io/readback.py",
    "cafa_mlflow/io/read_checks.py",
    "cafa_mlflow/io/submission_check.py",
    "cafa_mlflow/io/reference_formats.py",
    "cafa_mlflow/config/blocks.py",
    "cafa_mlflow/config/schema.py",
]


@pytest.mark.parametrize("name", MY_FILES)
def test_no_function_over_60_lines_and_no_params_any(name):
    tree = ast.parse((REPO / name).read_text())
    long = [
        f"{n.name}: {n.end_lineno - n.lineno + 1}"
        for n in ast.walk(tree)
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 60
    ]
    untyped = [
        n.name
        for n in ast.walk(tree)
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
        for a in n.args.args
        if a.arg == "params" and a.annotation is not None and ast.unparse(a.annotation) == "Any"
    ]
    assert not long and not untyped


# ---- guards: inputs the fault probe found handled (they stay so) --------------------------------------


def test_crlf_and_bom_fasta_read_like_plain(tmp_path):
    crlf = tmp_path / "crlf.fasta"
    crlf.write_bytes(b"\xef\xbb\xbf>A desc\r\nMKV\r\nLL\r\n>B\r\nGG\r\n")
    assert [(r.id, r.sequence) for r in read_fasta(crlf)] == [("A", "MKVLL"), ("B", "GG")]


def test_gzip_data_named_xz_is_one_line(tmp_path):
    path = tmp_path / "train.fasta.xz"
    path.write_bytes(gzip.compress(b">A\nMKV\n"))
    with pytest.raises(InputError, match=r"train.fasta.xz: truncated or corrupt xz data") as err:
        list(read_fasta(path))
    one_line(err.value)


def test_a_gaf_that_is_really_a_fasta_is_one_line(tmp_path):
    fasta = write(tmp_path / "goa.fasta", "".join(f">{a}\n{SEQUENCES[a]}\n" for a in ("HBA", "HBB")))
    fake = write(tmp_path / "goa.gaf", fasta.read_text())
    with pytest.raises(InputError, match=r"goa.gaf:1: 1 tab-separated columns; a GAF 2.x line has") as err:
        read_gaf(fake, fasta)
    one_line(err.value)
    assert read_gaf(write(tmp_path / "real.gaf", gaf_text()), fasta).annotations.shape[0] > 0


def test_explain_of_an_unknown_id_is_one_line_before_any_model_is_loaded(tmp_path, capsys):
    fasta = write(tmp_path / "q.fasta", ">A\nMKV\n")
    code = cafa(["explain", "--fasta", str(fasta), "--protein", "NOPE", "--model-uri", "models:/none@champion"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no protein 'NOPE'" in err


def test_params_yaml_still_loads_unchanged():
    params = load_config()
    assert isinstance(params, Params) and params.reference.databases[0]["format"] == "metastudent"
    assert params.with_overrides({}) == params


def test_leftover_of_a_killed_build_beside_the_cache_is_removed(tmp_path):
    """kill -9 during preparation leaves only a temporary folder beside the cache (atomic_dir): the next build
    removes it and writes the whole folder."""
    final = tmp_path / "reference-x"
    with atomic_dir(final) as tmp:
        (tmp / "a").write_text("1\n")
    leftover = tmp_path / ".reference-x.cafa-999999-dead"
    shutil.copytree(final, leftover)
    marker = json.loads((leftover / ".cafa-mlflow").read_text())
    (leftover / ".cafa-mlflow").write_text(json.dumps({**marker, "pid": 999999}))
    with atomic_dir(final) as tmp:
        (tmp / "a").write_text("1\n")
    assert not leftover.exists() and integrity.reusable_cache(final, ["a"])
    assert os.listdir(tmp_path) == ["reference-x"]
