"""Predict across machines: `cafa predict --shard i/N` parts merged by `cafa merge-shards`, and
`cafa predict --engine ray` on a local two-worker Ray cluster, both byte for byte the single-process submission."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient
from predictor_fixtures import SEQUENCES
from test_predict import NAME, champion  # noqa: F401  (the fixture: a tiny registered champion)

from cafa_mlflow.config.flags import parse_params
from cafa_mlflow.errors import CafaError, ConfigError, InputError
from cafa_mlflow.io.fasta import load_fasta
from cafa_mlflow.io.integrity import digest
from cafa_mlflow.io.submission import validate_submission
from cafa_mlflow.workflows import predict_job, shards
from pipelines import cli, predict

N_QUERIES = 8


def query_fasta(tmp_path: Path) -> Path:
    """Eight proteins of different lengths (batches of 2 pad them differently than one whole-file batch)."""
    names = sorted(SEQUENCES)
    path = tmp_path / "queries.fasta"
    text = ""
    for i in range(N_QUERIES):
        seq = SEQUENCES[names[i % len(names)]]
        text += f">Q{i} 9606\n{seq[: 40 + 17 * i] if i % 2 else seq}\n"
    path.write_text(text)
    return path


def run_predict(tmp_path: Path, uri: str, fasta: Path, out: Path, *extra: str, emb: str = "emb") -> None:
    flags = ["--fasta", str(fasta), "--out", str(out), "--tracking-uri", uri, "--tracking-registered-model", NAME]
    flags += ["--embed-out", str(tmp_path / emb), "--tracking-system-metrics", "false"]
    flags += ["--tracking-experiment", "predict-test", "--batch-size", "2", "--threads", "1", *extra]
    predict.main(flags)


def job(tmp_path: Path, fasta: Path, *flags: str) -> predict_job.PredictJob:
    """The PredictJob of `cafa predict --fasta FASTA --out tmp/out.tsv FLAGS`."""
    argv = ["--fasta", str(fasta), "--out", str(tmp_path / "out.tsv"), *flags]
    return predict_job.PredictJob.from_params(parse_params(argv, "cafa predict", "", own="predict")[0])


def predict_runs() -> list:
    experiment = mlflow.get_experiment_by_name("predict-test").experiment_id
    return MlflowClient().search_runs([experiment], "tags.entry_point = 'predict'")


def test_shard_rule_is_contiguous_and_covers_every_protein_once():
    for n in (0, 1, 7, 8, 100):
        for count in (1, 3, 8, 11):
            bounds = [shards.shard_bounds(n, i, count) for i in range(count)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            assert max(hi - lo for lo, hi in bounds) - min(hi - lo for lo, hi in bounds) <= 1
    assert shards.parse_shard("2/3") == (2, 3) and shards.parse_shard(" 0 / 1 ") == (0, 1)
    for bad in ("3/3", "1", "-1/2", "a/b", "1/0"):
        with pytest.raises(ConfigError, match="expected i/N"):
            shards.parse_shard(bad)
    with pytest.raises(ConfigError, match="exclude each other"):  # said before any model is loaded
        predict.main(["--shard", "0/2", "--engine", "ray", "--fasta", "q.fasta"])


def test_shards_merge_to_the_single_process_submission(tmp_path, champion):  # noqa: F811
    uri, _ = champion
    fasta = query_fasta(tmp_path)
    single, single_ev = tmp_path / "single.tsv", tmp_path / "single_evidence.tsv"
    run_predict(tmp_path, uri, fasta, single, "--evidence", str(single_ev))
    runs_before = len(predict_runs())
    out, ev = tmp_path / "sharded" / "submission.tsv", tmp_path / "sharded" / "evidence.tsv"
    for i in (2, 0, 1):  # any order, any machine; a fresh embed.out: the model embeds each shard's sequences
        run_predict(tmp_path, uri, fasta, out, "--shard", f"{i}/3", "--evidence", str(ev), emb="emb_shards")
    assert len(predict_runs()) == runs_before + 3  # one run per shard process
    parts = [shards.part_path(out, i, 3) for i in range(3)]
    ids = [{line.split("\t")[0] for line in p.read_text().splitlines()} for p in parts]
    assert all(not (a & b) for k, a in enumerate(ids) for b in ids[k + 1 :])  # a protein is in one shard only
    manifest = json.loads(shards.manifest_path(parts[1]).read_text())
    assert (manifest["shard"], manifest["shards"], manifest["proteins"], manifest["first"]) == (1, 3, 3, "Q2")
    assert manifest["fasta_sha256"] == digest(fasta) and manifest["model"] == f"models:/{NAME}/1"
    assert cli.main(["merge-shards", "--out", str(out), "--evidence", str(ev)]) == 0
    assert out.read_bytes() == single.read_bytes()
    assert ev.read_bytes() == single_ev.read_bytes()
    found = validate_submission(out)
    assert not found.counts and found.n_proteins == N_QUERIES
    # shards reading the whole FASTA's embedding cache (made by the single-process run) merge the same way
    out2 = tmp_path / "cached" / "submission.tsv"
    for i in range(2):
        run_predict(tmp_path, uri, fasta, out2, "--shard", f"{i}/2")
    result = shards.merge_shards(out2, [shards.part_path(out2, i, 2) for i in (1, 0)])
    assert out2.read_bytes() == single.read_bytes() and result.shards == 2 and result.proteins == N_QUERIES


def fake_part(out: Path, index: int, count: int, fasta_sha: str = "f" * 64, proteins: int = 1) -> Path:
    """A part file and its manifest as `cafa predict --shard` writes them (one protein, one line)."""
    part = shards.part_path(out, index, count)
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_text(f"P{index}\tGO:0008150\t0.5\n")
    manifest = {
        "format": shards.FORMAT,
        "fasta": "q.fasta",
        "fasta_sha256": fasta_sha,
        "fasta_proteins": count * proteins,
        "shard": index,
        "shards": count,
        "proteins": proteins,
        "first": f"P{index}",
        "last": f"P{index}",
        "model": "models:/m/1",
        "lines": 1,
        "part_sha256": digest(part),
        "evidence_sha256": None,
    }
    shards.manifest_path(part).write_text(json.dumps(manifest))
    return part


def one_line_error(out: Path, parts: list[Path] | None = None) -> str:
    with pytest.raises(InputError) as err:
        shards.merge_shards(out, parts)
    assert isinstance(err.value, CafaError) and "\n" not in str(err.value)
    return str(err.value)


def test_merge_refuses_missing_duplicated_and_foreign_shards(tmp_path):
    out = tmp_path / "sub.tsv"
    assert "no part files" in one_line_error(out)
    parts = [fake_part(out, i, 3) for i in range(3)]
    shards.merge_shards(out)
    assert out.read_text() == "P0\tGO:0008150\t0.5\nP1\tGO:0008150\t0.5\nP2\tGO:0008150\t0.5\n"
    message = one_line_error(out, [parts[0], parts[2]])
    assert "shard 1 of 3 is missing" in message and str(parts[1]) in message and "--shard 1/3" in message
    assert "both shard 2 of 3" in one_line_error(out, [*parts, parts[2]])
    other = fake_part(tmp_path / "other" / "sub.tsv", 1, 3, fasta_sha="0" * 64)
    assert "different FASTA files" in one_line_error(out, [parts[0], other, parts[2]])
    four = fake_part(tmp_path / "four" / "sub.tsv", 1, 4)
    assert "different shard counts" in one_line_error(out, [parts[0], four, parts[2]])
    parts[1].write_text("P1\tGO:0008150\t0.7\n")
    assert "changed since shard 1 of 3 wrote it" in one_line_error(out)
    shards.manifest_path(parts[1]).unlink()
    assert "manifest" in one_line_error(out)


def test_a_missing_ray_is_one_line(monkeypatch):
    import builtins

    from cafa_mlflow.errors import MissingToolError
    from cafa_mlflow.workflows import predict_ray

    real = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(MissingToolError, match=r"^Ray is not installed: pip install '\.\[ray\]'$"):
        predict_ray.import_ray()


@pytest.fixture(scope="module")
def ray_cluster():
    """A new local Ray with two CPUs (shared by this module's Ray tests): an actor pool of two runs side by side.
    address="local": never attach to a Ray another process on this machine has started."""
    ray = pytest.importorskip("ray")
    ray.init(
        address="local", num_cpus=2, object_store_memory=200 * 1024**2, include_dashboard=False, log_to_driver=False
    )
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_engine_writes_the_single_process_submission_in_one_run(tmp_path, champion, ray_cluster):  # noqa: F811
    uri, _ = champion
    fasta = query_fasta(tmp_path)
    single, single_ev = tmp_path / "single.tsv", tmp_path / "single_evidence.tsv"
    run_predict(tmp_path, uri, fasta, single, "--evidence", str(single_ev))
    before = {r.info.run_id for r in predict_runs()}
    out, ev = tmp_path / "ray" / "submission.tsv", tmp_path / "ray" / "evidence.tsv"
    # a fresh embed.out: the actors' models embed the sequences themselves
    run_predict(tmp_path, uri, fasta, out, "--engine", "ray", "--workers", "2", "--evidence", str(ev), emb="emb_ray")
    assert out.read_bytes() == single.read_bytes()
    assert ev.read_bytes() == single_ev.read_bytes()
    assert not validate_submission(out).counts
    new = [r for r in predict_runs() if r.info.run_id not in before]
    assert len(new) == 1  # the driver's run only: the workers open none
    run = new[0]
    assert run.data.params["engine"] == "ray" and run.data.params["ray_workers"] == "2"
    assert run.data.metrics["submission_proteins"] == N_QUERIES
    assert run.data.metrics["submission_lines"] == len(single.read_text().splitlines())
    assert ray_cluster.is_initialized()  # a Ray the caller started is left running
    # the whole FASTA's embedding cache (made by the single-process run): the actors get the vectors
    records = load_fasta(fasta)
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    ray_job = job(tmp_path, fasta, "--engine", "ray", "--embed-out", str(tmp_path / "emb"))
    vectors, inputs = predict_job.model_inputs(model, ray_job, records, records)
    assert vectors is not None and len(vectors) == N_QUERIES and "embedding" in inputs
    ray_job = job(tmp_path, fasta, "--engine", "ray", "--embed-out", str(tmp_path / "emb_ray"))
    assert predict_job.model_inputs(model, ray_job, records, records)[0] is None  # no such cache
    cached = tmp_path / "ray" / "cached.tsv"
    run_predict(tmp_path, uri, fasta, cached, "--engine", "ray", "--workers", "2")
    assert cached.read_bytes() == single.read_bytes()


def test_merge_shards_is_a_light_command(tmp_path):
    from test_command_imports import run_in_process

    out = tmp_path / "sub.tsv"
    for i in range(2):
        fake_part(out, i, 2)
    report = run_in_process(["merge-shards", "--out", str(out)], tmp_path)
    assert report["code"] == 0 and report["loaded"] == []  # neither torch nor MLflow (nor Ray)


@pytest.mark.slow
def test_an_actors_error_comes_back_as_its_one_line(tmp_path, monkeypatch, ray_cluster):
    from cafa_mlflow.workflows import predict_ray

    fasta = query_fasta(tmp_path)
    no_model = predict_job.ReadyModel(None, {"sequence"}, None)  # no driver-side model
    monkeypatch.setattr(predict_ray, "ready_model", lambda *args, **kw: no_model)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/empty.db")  # what the actors load the model from
    MlflowClient().search_experiments()  # the store's tables, made once here (as the driver's run does)
    ray_job = job(tmp_path, fasta, "--workers", "2", "--batch-size", "3", "--engine", "ray")
    try:
        with pytest.raises(InputError) as err:
            predict_ray.predict_ray(ray_job, "models:/no-such-model/1")
    finally:
        mlflow.set_tracking_uri(None)
    assert str(err.value).startswith("cannot load model models:/no-such-model/1") and "\n" not in str(err.value)
    assert not (tmp_path / "out.tsv").exists()
