"""ESM-2 embedding: strategies against a direct fair-esm forward pass, batching order, cache layout."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from esm_fixtures import SEQS, direct_vector, embed, one_torch_thread, write_fasta  # noqa: F401 (fixture)

from cafa_mlflow.embed import load_embeddings, load_esm, make_tiny_esm, model_label
from cafa_mlflow.embed.forward import token_batches
from cafa_mlflow.embed.resolve import read_index
from cafa_mlflow.embed.units import chunk_bounds, window_starts
from cafa_mlflow.errors import ConfigError, InputError
from pipelines.cli import main as cafa
from pipelines.make_tiny_esm import add_tiny_arguments, run_make_tiny

TOL = dict(rtol=2e-3, atol=2e-3)  # float16 storage


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = make_tiny_esm(tmp_path_factory.mktemp("ckpt") / "esm2_tiny.pt", layers=2, dim=64, heads=4, seed=0)
    model, alphabet = load_esm(str(path))
    return str(path), model, alphabet


@pytest.fixture
def fasta(tmp_path):
    return write_fasta(tmp_path / "in.fasta", SEQS)


def run(fasta, ckpt, out, **kw):
    args = dict(
        strategy="balanced",
        layer=-1,
        window=10,
        stride=4,
        pooling="mean",
        toks_per_batch=64,
        precision="fp32",
        device="cpu",
        shard_size=4,
        progress=False,
        max_residues=20,
    )
    args.update(kw)
    return embed(fasta, ckpt, out, **args)


def test_tiny_checkpoint_is_seeded_and_labelled(tmp_path, tiny):
    path, model, _ = tiny
    assert (model.num_layers, model.embed_dim, model.attention_heads) == (2, 64, 4)
    assert model_label(path) == "tiny:esm2_tiny.pt"
    again, _ = load_esm(str(make_tiny_esm(tmp_path / "esm2_b.pt", seed=0)))
    other, _ = load_esm(str(make_tiny_esm(tmp_path / "esm2_c.pt", seed=1)))
    w = "embed_tokens.weight"
    assert torch.equal(again.state_dict()[w], model.state_dict()[w])
    assert not torch.equal(other.state_dict()[w], model.state_dict()[w])
    plain_name, _ = load_esm(str(make_tiny_esm(tmp_path / "tiny.pt", seed=0)))  # any *.pt name, as in the README
    assert torch.equal(plain_name.state_dict()[w], model.state_dict()[w])
    assert model_label(str(tmp_path / "tiny.pt")) == "tiny:tiny.pt"
    with pytest.raises(InputError, match="must end with '.pt'"):
        make_tiny_esm(tmp_path / "tiny.bin")


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_balanced_matches_direct_forward_in_input_order(tmp_path, fasta, tiny, pooling):
    path, model, alphabet = tiny
    result = run(fasta, path, tmp_path / "out", pooling=pooling)
    emb = load_embeddings(result.cache_dir)
    batches = token_batches([min(len(s), 20) + 2 for s in SEQS.values()], 64)
    assert [i for b in batches for i in b] != list(range(6))  # the model saw them in another order
    assert emb.ids == list(SEQS)
    assert emb.vectors.shape == (6, 64) and emb.offsets is None
    for i, seq in enumerate(SEQS.values()):
        units = seq if len(seq) <= 20 else seq[:10] + seq[-10:]
        np.testing.assert_allclose(
            emb.vectors[i].astype(np.float32), direct_vector(model, alphabet, units, 2, pooling), **TOL
        )
    assert result.stats["share_over_1022"] == pytest.approx(3 / 6)  # lengths over max_residues=20
    assert result.stats["n_proteins"] == 6 and result.stats["layer"] == 2 and not result.stats["cache_hit"]


def test_window_and_chunk_bounds():
    assert window_starts(25, 10, 4) == [0, 6, 12, 15]  # step = window - overlap; last ends at 25
    assert window_starts(10, 10, 4) == [0]
    assert window_starts(11, 10, 0) == [0, 1]
    assert chunk_bounds(25, 10) == [(0, 8), (8, 17), (17, 25)]
    assert chunk_bounds(7, 10) == [(0, 7)]


@pytest.mark.parametrize("pooling", ["mean", "max", "cls"])
def test_sliding_window_matches_direct_forward(tmp_path, fasta, tiny, pooling):
    path, model, alphabet = tiny
    emb = load_embeddings(run(fasta, path, tmp_path / "out", strategy="sliding_window", pooling=pooling).cache_dir)
    assert emb.ids == list(SEQS) and emb.vectors.shape == (6, 64)
    unit_pooling = "cls" if pooling == "cls" else "mean"  # cls: BOS vector per window, averaged over windows
    for i, seq in enumerate(SEQS.values()):
        wins = np.stack(
            [direct_vector(model, alphabet, seq[s : s + 10], 2, unit_pooling) for s in window_starts(len(seq), 10, 4)]
        )
        expected = wins.max(0) if pooling == "max" else wins.mean(0)
        np.testing.assert_allclose(emb.vectors[i].astype(np.float32), expected, **TOL)


def test_chunks_are_ragged_with_offsets(tmp_path, fasta, tiny):
    path, model, alphabet = tiny
    emb = load_embeddings(run(fasta, path, tmp_path / "out", strategy="chunks").cache_dir)
    n_chunks = [len(chunk_bounds(len(s), 10)) for s in SEQS.values()]
    assert n_chunks == [3, 1, 3, 1, 3, 1]
    assert emb.offsets.tolist() == np.concatenate([[0], np.cumsum(n_chunks)]).tolist()
    assert emb.manifest["ragged"] and emb.vectors.shape == (12, 64)
    for i, seq in enumerate(SEQS.values()):
        expected = np.stack([direct_vector(model, alphabet, seq[s:e], 2) for s, e in chunk_bounds(len(seq), 10)])
        np.testing.assert_allclose(emb.protein(i).astype(np.float32), expected, **TOL)


def test_token_budget_batches_sorted_and_bounded():
    lengths = [5, 30, 12, 30, 7, 100]
    batches = token_batches(lengths, 64)
    assert batches == [[5], [1, 3], [2, 4, 0]]
    assert sorted(i for b in batches for i in b) == list(range(6))
    assert all(max(lengths[i] for i in b) * len(b) <= 64 for b in batches if len(b) > 1)


def test_cache_reuse_layer_choice_and_sharded_access(tmp_path, fasta, tiny):
    path, model, alphabet = tiny
    first = run(fasta, path, tmp_path / "out", shard_size=4)
    again = run(fasta, path, tmp_path / "out", shard_size=4)
    assert again.cache_dir == first.cache_dir and again.stats["cache_hit"] and again.stats["n_computed"] == 0
    emb = load_embeddings(first.cache_dir)
    assert [s["file"] for s in emb.manifest["shards"]] == ["shard_00000.npy", "shard_00001.npy"]
    full = np.asarray(emb.vectors)
    assert full.dtype == np.float16 and np.array_equal(emb.vectors[[5, 0, 4]], full[[5, 0, 4]])
    assert np.array_equal(emb.vectors[3:6], full[3:6]) and np.array_equal(emb.vectors[-1], full[5])
    layer1 = run(fasta, path, tmp_path / "out", layer=1)
    assert layer1.cache_dir != first.cache_dir and layer1.stats["layer"] == 1
    np.testing.assert_allclose(
        load_embeddings(layer1.cache_dir).vectors[1].astype(np.float32),
        direct_vector(model, alphabet, SEQS["P2"], 1),
        **TOL,
    )


def test_bf16_autocast_close_to_fp32(tmp_path, fasta, tiny):
    path = tiny[0]
    a = np.asarray(load_embeddings(run(fasta, path, tmp_path / "o", precision="fp32").cache_dir).vectors, np.float32)
    b = np.asarray(load_embeddings(run(fasta, path, tmp_path / "o", precision="bf16").cache_dir).vectors, np.float32)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99 and not np.array_equal(a, b)


@pytest.mark.parametrize(
    "content, match",
    [
        ("", "no FASTA records"),
        (">A\nMK1LV\n", "invalid characters"),
        (">A\nMKV\n>B\n12-34\n", "bad.fasta:4: protein 'B'"),
    ],
)
def test_bad_input_writes_no_cache(tmp_path, tiny, content, match):
    bad = tmp_path / "bad.fasta"
    bad.write_text(content)
    with pytest.raises(InputError, match=match):
        run(bad, tiny[0], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bad_parameters_fail_before_anything_is_written(tmp_path, fasta, tiny):
    for kw in (
        dict(strategy="nope"),
        dict(strategy="sliding_window", stride=10),
        dict(window=50),
        dict(layer=3),
        dict(toks_per_batch=8),
    ):
        with pytest.raises(ConfigError):
            run(fasta, tiny[0], tmp_path / "out", **{"strategy": "chunks", **kw})
    with pytest.raises(ConfigError, match="neither a fair-esm"):
        run(fasta, str(tmp_path / "missing.pt"), tmp_path / "out")
    with pytest.raises(InputError, match="no complete embedding cache"):
        load_embeddings(tmp_path)


def test_cli_helpers(tmp_path, fasta, capsys):
    parser = argparse.ArgumentParser()
    add_tiny_arguments(parser)
    run_make_tiny(parser.parse_args(["--out", str(tmp_path / "esm2_cli.pt"), "--layers", "1", "--dim", "32"]))
    assert "tiny:esm2_cli.pt" in capsys.readouterr().out
    out = tmp_path / "emb"
    assert (
        cafa(
            [
                "embed",
                "--fasta",
                str(fasta),
                "--esm-model",
                str(tmp_path / "esm2_cli.pt"),
                "--toks-per-batch",
                "2000",
                "--device",
                "cpu",
                "--out",
                str(out),
                "--tracking-uri",
                f"sqlite:///{tmp_path / 'x.db'}",
                "--tracking-system-metrics",
                "false",
            ]
        )
        == 0
    )
    (cache_dir,) = read_index(out).values()
    assert f"-> {cache_dir}" in capsys.readouterr().out and load_embeddings(cache_dir).manifest["dim"] == 32
    assert load_embeddings(cache_dir).manifest["model_label"] == "tiny:esm2_cli.pt"
