"""`cafa predict` writes the scores the chain saved when they are provably what the model computes for the FASTA
(workflows/score_cache.py): byte-identical to a from-scratch predict (one process, shards, Ray), and any
difference in proteins, model content or a setting that changes scores computes instead."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pytest
from cafa_fixtures import forget_mlflow_run
from esm_fixtures import embed, split_args
from mlflow.tracking import MlflowClient
from predictor_fixtures import SEQUENCES, TERMS, labels, write_fasta, write_obo
from test_reference import reference

from cafa_mlflow.config.params_file import load_params
from cafa_mlflow.config.schema import Params
from cafa_mlflow.embed import load_embeddings, make_tiny_esm
from cafa_mlflow.go.ontology import load_obo
from cafa_mlflow.io.fasta import FastaRecord, load_fasta
from cafa_mlflow.io.submission import validate_submission
from cafa_mlflow.predictors.base import ProteinSet, TrainSet
from cafa_mlflow.predictors.combine.blend import EnsemblePredictor
from cafa_mlflow.predictors.homology import HomologyPredictor
from cafa_mlflow.predictors.knn import KnnPredictor
from cafa_mlflow.predictors.naive import NaivePredictor
from cafa_mlflow.serving import pyfunc
from cafa_mlflow.tracking import runs
from cafa_mlflow.workflows import score_cache
from cafa_mlflow.workflows.common import write_member
from cafa_mlflow.workflows.ensemble import saved_scores_record
from cafa_mlflow.workflows.predict_job import prepare_model
from pipelines import cli, predict

BP, BP1, BP2, CC, CC3, MF, MF4, MF5 = TERMS
SETTINGS = dict(layer=-1, strategy="balanced", window=1022, stride=256, pooling="mean", max_residues=1022)
NAME = "cafa-reuse-test"
SUBMISSION = {"max_terms": 1500, "sig": 3, "min_score": 0.001}
HAS_DIAMOND = shutil.which("diamond") is not None


def test_input_digest_is_the_model_input_ids_and_residues_in_order(tmp_path):
    a = [FastaRecord("P1", "MKV", "9606"), FastaRecord("P2", "MAA", None)]
    (tmp_path / "kaggle.fasta").write_text(">P1 9606\nMK\nv\n>P2\nMAA\n")  # taxon, wrapping, lower case
    assert score_cache.input_digest(load_fasta(tmp_path / "kaggle.fasta")) == score_cache.input_digest(a)
    assert score_cache.input_digest([a[0], FastaRecord("P2", "MAV", None)]) != score_cache.input_digest(a)
    assert score_cache.input_digest(a[::-1]) != score_cache.input_digest(a)
    assert score_cache.input_digest([FastaRecord("P3", "MKV", None), a[1]]) != score_cache.input_digest(a)


def test_a_target_header_accession_is_part_of_the_input(tmp_path):
    """`>T1 P12345` gives the reference member the query's own entry, so its scores may differ from `>T1`'s:
    the reuse key tells them apart, and predict hands the accessions to the model with the whole input."""
    (tmp_path / "cafa.fasta").write_text(">T1 P69905\nMKV\n>T2\nMAV\n")
    (tmp_path / "plain.fasta").write_text(">T1\nMKV\n>T2\nMAV\n")
    cafa, plain = load_fasta(tmp_path / "cafa.fasta"), load_fasta(tmp_path / "plain.fasta")
    assert [r.accession for r in cafa] == ["P69905", None]
    assert score_cache.input_digest(cafa) != score_cache.input_digest(plain)
    seen = {}

    class Model:
        def set_threads(self, threads):
            seen["threads"] = threads

        def set_query_set(self, ids, sequences, accessions=None):
            seen["query_set"] = (list(ids), list(sequences), list(accessions))

    prepare_model(SimpleNamespace(unwrap_python_model=Model), cafa, 1)
    assert seen == {"threads": 1, "query_set": (["T1", "T2"], ["MKV", "MAV"], ["P69905", None])}


def test_folder_identity_follows_every_files_content(tmp_path):
    from cafa_mlflow.io.text import seal

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w.npy").write_bytes(b"1")
    seal(tmp_path / "m")
    first = score_cache.folder_identity(tmp_path / "m")
    (tmp_path / "m" / "w.npy").write_bytes(b"2")
    seal(tmp_path / "m")
    assert score_cache.folder_identity(tmp_path / "m") != first


def query_fasta(path: Path, change: str | None = None) -> Path:
    """Kaggle-style queries; HBB is both a query and a reference entry (reference.exclude=queries drops it as
    a voter for every query of the whole input, however predict batches it). `change`: one residue changed."""
    text = ""
    for i, name in enumerate(["HBA", "HBB", "LYZ", "UBQ", "HBB", "HBA"]):
        seq = SEQUENCES[name] if i < 4 else SEQUENCES[name][: 60 + 9 * i]
        if name == change and i < 4:
            seq = seq[:10] + ("A" if seq[10] != "A" else "G") + seq[11:]
        text += f">{name if i < 4 else f'{name}_{i}'} 9606\n{seq}\n"
    path.write_text(text)
    return path


def members(tmp: Path, ckpt: str) -> dict:
    ids = ["HBA", "LYZ", "UBQ"]
    pool = write_fasta(tmp / "train.fasta", ids)
    emb = load_embeddings(embed(pool, ckpt, tmp / "emb", progress=False, device="cpu", **SETTINGS).cache_dir)
    y = labels(ids, [[BP, BP1, BP2], [MF, MF4], [CC, CC3]])
    train = TrainSet(ids=ids, embeddings=emb.vectors[np.array([emb.index()[i] for i in ids])], fasta=pool, labels=y)
    onto = load_obo(write_obo(tmp))
    found = {"naive": NaivePredictor(onto).fit(train), "knn": KnnPredictor(k=2).fit(train)}
    found["knn"].embed = split_args(ckpt, **SETTINGS)[0]
    if HAS_DIAMOND:
        found["homology"] = HomologyPredictor(tmp / "db", threads=1).fit(train)
        found["reference"] = reference(tmp).fit(train)
    return found


def ensemble_of(found: dict, onto, weights: list[float] | None = None) -> EnsemblePredictor:
    ensemble = EnsemblePredictor(found, onto)
    w = weights or [1.0 / len(found)] * len(found)
    ensemble.weights = {a: dict(zip(found, w)) for a in ("BPO", "CCO", "MFO")}
    ensemble.term_aspect = {t: onto.aspect[onto.index[t]] for t in TERMS}
    return ensemble


def chain_step(tmp: Path, params: Params, ensemble: EnsemblePredictor, fasta: Path, ckpt: str) -> Path:
    """What the chain does for the test proteins: each member scores the whole test FASTA in one call (cached
    vectors), the ensemble finalizes and write_member saves test.npz with the record the ensemble step writes."""
    records = load_fasta(fasta)
    vectors = load_embeddings(embed(fasta, ckpt, tmp / "emb", progress=False, device="cpu", **SETTINGS).cache_dir)
    ids = [r.id for r in records]
    proteins = ProteinSet(
        ids,
        embeddings=np.asarray(vectors.vectors[np.array([vectors.index()[i] for i in ids])], dtype=np.float32),
        fasta=fasta,
        sequences=[r.sequence for r in records],
    )
    scores = {name: member.predict(proteins) for name, member in ensemble.members.items()}
    final = ensemble.finalized(scores, ids, load_obo(params.data.obo), params.submission)
    out = Path(params.outputs.predictions) / "ensemble"
    record = saved_scores_record(params, ensemble, SimpleNamespace(test_fasta=fasta), {"test": final}, scores)
    return write_member(out, ensemble, {"test": final}, {}, extra=record)


def register(folder: Path, obo: Path, submission: dict = SUBMISSION) -> str:
    with mlflow.start_run():
        info = pyfunc.log_go_model(folder, obo, submission)
    return runs.register_and_promote(info.model_uri, NAME, 0.5, "split0")[0]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reuse")
    mp = pytest.MonkeyPatch()
    forget_mlflow_run(mp)
    ckpt = str(make_tiny_esm(tmp / "esm2_tiny.pt", layers=1, dim=16, heads=2, seed=0))
    obo = write_obo(tmp)
    params = Params.from_dict(load_params(None)).with_overrides(
        {
            "data.obo": str(obo),
            "outputs.predictions": str(tmp / "pred"),
            **{f"submission.{k}": v for k, v in SUBMISSION.items()},
        }
    )
    found = members(tmp, ckpt)
    fasta = query_fasta(tmp / "testsuperset.fasta")
    saved = chain_step(tmp, params, ensemble_of(found, load_obo(obo)), fasta, ckpt)
    uri = f"sqlite:///{tmp}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("reuse-test")
    assert register(saved / "model", obo) == "1"
    yield SimpleNamespace(tmp=tmp, uri=uri, fasta=fasta, obo=obo, found=found, saved=saved)
    mlflow.set_tracking_uri(None)
    mp.undo()


def run_predict(chain, out: Path, *extra: str, fasta: Path | None = None) -> Path:
    flags = ["--fasta", str(fasta or chain.fasta), "--out", str(out), "--tracking-uri", chain.uri]
    flags += ["--tracking-registered-model", NAME, "--embed-out", str(chain.tmp / "emb")]
    flags += ["--tracking-system-metrics", "false", "--tracking-experiment", "reuse-test", "--batch-size", "2"]
    flags += ["--threads", "1", "--outputs-predictions", str(chain.tmp / "pred"), *extra]
    predict.main(flags)
    return out


def last_run() -> dict:
    found = MlflowClient().search_runs(
        [mlflow.get_experiment_by_name("reuse-test").experiment_id],
        "tags.entry_point = 'predict'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return {**found[0].data.params, **found[0].data.tags}


def said(capsys) -> str:
    return next(line for line in capsys.readouterr().out.splitlines() if line.startswith("predict: "))


@pytest.mark.slow
def test_reused_submission_is_byte_identical_to_a_computed_one(chain, capsys):
    scratch = run_predict(chain, chain.tmp / "scratch.tsv", "--reuse", "false")
    assert said(capsys) == "predict: computing the scores: predict.reuse is false"
    assert last_run()["reused_scores"] == "False"
    reused = run_predict(chain, chain.tmp / "reused.tsv")
    assert said(capsys).startswith("predict: reusing the scores saved in")
    assert last_run()["reused_scores"] == "True" and "same model" in last_run()["reuse_reason"]
    assert reused.read_bytes() == scratch.read_bytes()
    found = validate_submission(reused, ontology=load_obo(chain.obo))
    assert not found.counts and found.n_proteins == 6
    # a shard takes its rows of the saved matrix; the merge is the same file
    sharded = chain.tmp / "sharded" / "submission.tsv"
    for i in (1, 0):
        run_predict(chain, sharded, "--shard", f"{i}/2")
        assert said(capsys).startswith("predict: reusing")
    assert cli.main(["merge-shards", "--out", str(sharded)]) == 0
    assert sharded.read_bytes() == scratch.read_bytes()
    # Ray: the driver writes the saved scores itself, no cluster started
    ray = run_predict(chain, chain.tmp / "ray.tsv", "--engine", "ray")
    assert said(capsys).startswith("predict: reusing") and ray.read_bytes() == scratch.read_bytes()
    assert "ray_workers" not in last_run()


@pytest.mark.slow
def test_other_proteins_model_or_settings_compute(chain, capsys):
    base = run_predict(chain, chain.tmp / "base.tsv")
    assert said(capsys).startswith("predict: reusing")
    # the same records in another layout (the prepared test.fasta's: no taxon, other wrapping): the same input
    plain = chain.tmp / "plain.fasta"
    plain.write_text("".join(f">{r.id}\n{r.sequence[:50]}\n{r.sequence[50:]}\n" for r in load_fasta(chain.fasta)))
    assert run_predict(chain, chain.tmp / "plain.tsv", fasta=plain).read_bytes() == base.read_bytes()
    assert said(capsys).startswith("predict: reusing")
    # one residue of one protein changed: computed, and scored like a from-scratch run of that FASTA
    changed = query_fasta(chain.tmp / "changed.fasta", change="LYZ")
    got = run_predict(chain, chain.tmp / "changed.tsv", fasta=changed)
    line = said(capsys)
    assert line.startswith("predict: computing the scores: the scores saved in") and "other proteins" in line
    assert last_run()["reused_scores"] == "False"
    assert not validate_submission(got).counts
    # the same content registered again (another version) is the same model: reused
    again = register(chain.saved / "model", chain.obo)
    run_predict(chain, chain.tmp / "again.tsv", "--model-uri", f"models:/{NAME}/{again}")
    assert said(capsys).startswith("predict: reusing")
    # another version with other weights: computed, and its scores differ
    other = ensemble_of(chain.found, load_obo(chain.obo), [1.0] + [0.0] * (len(chain.found) - 1))
    version = register(other.save(chain.tmp / "other"), chain.obo)
    out = run_predict(chain, chain.tmp / "other.tsv", "--model-uri", f"models:/{NAME}/{version}")
    assert "another model" in said(capsys) and out.read_bytes() != base.read_bytes()
    # a setting that changes the scores (the model's submission block: 2 terms per protein): computed
    capped = register(chain.saved / "model", chain.obo, {**SUBMISSION, "max_terms": 2})
    out = run_predict(chain, chain.tmp / "capped.tsv", "--model-uri", f"models:/{NAME}/{capped}")
    assert "another model" in said(capsys) and len(out.read_text().splitlines()) == 2 * 6
    # evidence needs the members' hits, which the saved matrix does not hold: computed
    run_predict(chain, chain.tmp / "ev.tsv", "--evidence", str(chain.tmp / "ev_evidence.tsv"))
    assert said(capsys) == "predict: computing the scores: --evidence needs the members' hits"
    assert (chain.tmp / "ev.tsv").read_bytes() == base.read_bytes()
    # a damaged record: one warning, computed, the same submission
    record = chain.saved / score_cache.RECORD
    kept = record.read_bytes()
    record.write_bytes(kept[:-5])
    try:
        out = run_predict(chain, chain.tmp / "damaged.tsv")
        assert said(capsys).startswith("predict: computing the scores: no saved scores with their key")
        assert out.read_bytes() == base.read_bytes()
    finally:
        record.write_bytes(kept)
