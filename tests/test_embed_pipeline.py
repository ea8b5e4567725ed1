"""`cafa make-tiny-esm` + `cafa embed` end to end: CLI flags, cache index, and what the MLflow run logs."""

from __future__ import annotations

import json

import mlflow
import numpy as np
from cafa_fixtures import forget_mlflow_run
from esm_fixtures import SEQS, direct_vector, one_torch_thread, write_fasta  # noqa: F401 (fixture)

from cafa_mlflow.config.schema import load_config
from cafa_mlflow.embed import load_embeddings, load_esm
from cafa_mlflow.embed.resolve import cache_for, read_index, write_index
from pipelines.cli import main as cafa


def test_cafa_embed_logs_params_and_metrics(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # mlflow's ./mlruns artifacts land here; params.yaml comes from the repo root
    forget_mlflow_run(monkeypatch)
    assert cafa(["make-tiny-esm", "--out", str(tmp_path / "tiny.pt"), "--layers", "2", "--dim", "32"]) == 0
    fasta = write_fasta(tmp_path / "small.fasta", SEQS)
    uri = f"sqlite:///{tmp_path / 'x.db'}"
    argv = [
        "embed",
        "--fasta",
        str(fasta),
        "--esm-model",
        str(tmp_path / "tiny.pt"),
        "--strategy",
        "sliding_window",
        "--window",
        "10",
        "--stride",
        "4",
        "--pooling",
        "max",
        "--max-residues",
        "20",
        "--toks-per-batch",
        "64",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "emb"),
        "--tracking-uri",
        uri,
        "--tracking-system-metrics",
        "false",
    ]
    assert cafa(argv) == 0
    assert "small: 6 proteins" in capsys.readouterr().out

    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("cafa-mlflow").experiment_id])
    params, metrics = run.data.params, run.data.metrics
    assert run.data.tags["entry_point"] == "embed" and run.info.status == "FINISHED"
    assert {
        k: params[k]
        for k in (
            "esm_model",
            "layer",
            "resolved_layer",
            "strategy",
            "window",
            "stride",
            "pooling",
            "toks_per_batch",
            "precision",
            "n_proteins",
        )
    } == {
        "esm_model": "tiny:tiny.pt",
        "layer": "-1",
        "resolved_layer": "2",
        "strategy": "sliding_window",
        "window": "10",
        "stride": "4",
        "pooling": "max",
        "toks_per_batch": "64",
        "precision": "fp32",
        "n_proteins": "6",
    }
    assert len(params["input_hash"]) == 64 and params["input_hash"] == params["input_hash_small"]
    assert metrics["n_proteins"] == 6 and metrics["share_over_1022"] == 0.5  # 3 of 6 longer than max_residues=20
    assert metrics["residues_per_s"] > 0 and metrics["proteins_per_s"] > 0 and metrics["seconds"] > 0
    assert metrics["peak_rss_mb"] > 0 and metrics["small_n_residues"] == sum(map(len, SEQS.values()))

    settings = {
        "esm_model": str(tmp_path / "tiny.pt"),
        "strategy": "sliding_window",
        "window": 10,
        "stride": 4,
        "pooling": "max",
        "max_residues": 20,
        "out": str(tmp_path / "emb"),
    }
    params_yaml = load_config(overrides={f"embed.{k}": v for k, v in settings.items()})
    cache_dir = cache_for(params_yaml, "small")  # the embed run's cache: same settings, nothing recomputed
    assert json.loads((tmp_path / "emb" / "index.json").read_text()) == {"small": cache_dir.name}
    assert read_index(tmp_path / "emb") == {"small": str(cache_dir)}
    emb = load_embeddings(cache_dir)
    assert emb.ids == list(SEQS) and emb.manifest["model_label"] == "tiny:tiny.pt" and emb.manifest["pooling"] == "max"
    model, alphabet = load_esm(str(tmp_path / "tiny.pt"))
    expected = direct_vector(model, alphabet, SEQS["P4"], 2)  # 9 residues: a single window
    np.testing.assert_allclose(emb.vectors[3].astype(np.float32), expected, rtol=2e-3, atol=2e-3)

    (tmp_path / "empty.fasta").write_text("")
    assert (
        cafa(
            [
                "embed",
                "--fasta",
                str(tmp_path / "empty.fasta"),
                "--esm-model",
                str(tmp_path / "tiny.pt"),
                "--out",
                str(tmp_path / "emb2"),
                "--tracking-uri",
                uri,
                "--tracking-system-metrics",
                "false",
            ]
        )
        == 2
    )
    assert "empty.fasta" in capsys.readouterr().err and not (tmp_path / "emb2").exists()


def test_cache_for_embeds_again_when_the_encoder_changed(tmp_path, monkeypatch):
    """A step asking for another encoder than the last embed run's never gets the old vectors."""
    from cafa_mlflow.embed import make_tiny_esm

    (tmp_path / "prepared").mkdir()
    fasta = write_fasta(tmp_path / "prepared" / "train.fasta", SEQS)
    a = make_tiny_esm(tmp_path / "a.pt", layers=1, dim=16, heads=2, seed=0)
    b = make_tiny_esm(tmp_path / "b.pt", layers=1, dim=16, heads=2, seed=1)
    base = {"embed.out": str(tmp_path / "emb"), "prepare.out": str(fasta.parent), "embed.device": "cpu"}
    first = cache_for(load_config(overrides={**base, "embed.esm_model": str(a)}), "train")
    again = cache_for(load_config(overrides={**base, "embed.esm_model": str(a)}), "train")
    other = cache_for(load_config(overrides={**base, "embed.esm_model": str(b)}), "train")
    assert first == again and other != first
    assert load_embeddings(other).manifest["key"]["model"] != load_embeddings(first).manifest["key"]["model"]
    assert not np.allclose(load_embeddings(first).vectors[0], load_embeddings(other).vectors[0])


def test_index_holds_from_another_directory_and_after_a_move(tmp_path, monkeypatch):
    """index.json names caches relative to its folder: a step run elsewhere, or after the folder moved, finds them;
    an index written by an older version (paths relative to where embed ran) is still read."""
    out = tmp_path / "project" / "outputs" / "embeddings"
    (out / "abc123").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "project")
    write_index("outputs/embeddings", {"train": "outputs/embeddings/abc123", "extra": str(tmp_path / "elsewhere")})
    assert json.loads((out / "index.json").read_text()) == {"train": "abc123", "extra": str(tmp_path / "elsewhere")}
    assert read_index("outputs/embeddings")["train"] == "outputs/embeddings/abc123"
    monkeypatch.chdir(tmp_path)
    assert read_index(out)["train"] == str(out / "abc123")
    moved = tmp_path / "moved"
    out.rename(moved)
    assert read_index(moved) == {"train": str(moved / "abc123"), "extra": str(tmp_path / "elsewhere")}
    monkeypatch.chdir(tmp_path / "project")
    (tmp_path / "project" / "outputs" / "embeddings" / "old").mkdir(parents=True)
    (tmp_path / "project" / "outputs" / "embeddings" / "index.json").write_text(
        json.dumps({"train": "outputs/embeddings/old"})
    )
    assert read_index("outputs/embeddings") == {"train": "outputs/embeddings/old"}
