"""Checkpoints that are not fair-esm ESM-2 checkpoints: one InputError naming the file and saying what one
is, exit status 2 through run_cli, and an existing embedding cache left byte-identical."""

from __future__ import annotations

import pickle
import random
import shutil
import urllib.error

import pytest
import torch
from esm_fixtures import SEQS, embed, one_torch_thread, write_fasta  # noqa: F401 (fixture)

from cafa_mlflow.embed import fetch_weights, load_esm, make_tiny_esm, model_label
from cafa_mlflow.embed.model import hub_files, regression_path
from cafa_mlflow.errors import InputError, MissingWeightsError, run_cli
from tests.cafa_fixtures import snapshot

WHAT_ONE_IS = r"a fair-esm ESM-2 checkpoint is a torch.save'd dict \{'model': weights, 'cfg'"


def bad_checkpoints(folder, tiny) -> dict[str, tuple[object, str]]:
    """name -> (file content builder, expected cause in the message: the load error, or none for a readable
    file that is not a checkpoint)."""
    weights = torch.load(tiny, weights_only=False)
    missing = {**weights, "model": dict(list(weights["model"].items())[1:])}

    def save(obj):
        return lambda path: torch.save(obj, path)

    return {
        # seeded: some random bytes fail as IndexError inside the unpickler, which made the test flaky
        "random": (lambda p: p.write_bytes(random.Random(0).randbytes(4096)), r" \(UnpicklingError: "),
        "truncated": (
            lambda p: p.write_bytes(tiny.read_bytes()[:3000]),
            r" \(RuntimeError: PytorchStreamReader failed",
        ),
        "empty": (lambda p: p.write_bytes(b""), r" \((EOFError|RuntimeError)"),
        "list": (save([1, 2, 3]), ""),
        "other_dict": (save({"state_dict": {}, "epoch": 3}), ""),
        "pickle": (lambda p: p.write_bytes(pickle.dumps(pickle.PickleError("x"))), r" \(UnpicklingError: "),
        "missing_key": (save(missing), r" \(RuntimeError: Error\(s\) in loading state_dict for ESM2: Missing key"),
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_esm(tmp_path_factory.mktemp("ckpt") / "esm2_tiny.pt", layers=1, dim=16, heads=2)


@pytest.mark.parametrize("kind", ["random", "truncated", "empty", "list", "other_dict", "pickle", "missing_key"])
def test_bad_checkpoint_is_one_input_error(tmp_path, tiny, kind, capsys):
    make, cause = bad_checkpoints(tmp_path, tiny)[kind]
    path = tmp_path / f"esm2_{kind}.pt"
    make(path)
    shutil.copy(regression_path(tiny), regression_path(path))
    expected = rf"^{path}: not an ESM-2 checkpoint in fair-esm's format{cause}.*; {WHAT_ONE_IS}"
    with pytest.raises(InputError, match=expected) as err:
        load_esm(str(path))
    assert "\n" not in str(err.value)
    if kind != "missing_key":  # the format check (cfg) passes for this one: only loading the weights fails
        for check in (model_label, fetch_weights):
            with pytest.raises(InputError, match=expected):
                check(str(path))
    assert run_cli(lambda: load_esm(str(path))) == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and stderr.startswith(f"error: {path}: not an ESM-2 checkpoint")


def test_bad_regression_file_is_named(tmp_path, tiny):
    path = tmp_path / "esm2_t.pt"
    shutil.copy(tiny, path)
    regression_path(path).write_bytes(random.Random(1).randbytes(1000))
    with pytest.raises(InputError, match=rf"^{regression_path(path)}: not an ESM-2 checkpoint"):
        load_esm(str(path))


def test_bad_checkpoint_leaves_existing_cache_unchanged(tmp_path, tiny):
    fasta = write_fasta(tmp_path / "in.fasta", SEQS)
    kw = dict(toks_per_batch=64, device="cpu", progress=False, max_residues=20)
    embed(fasta, str(tiny), tmp_path / "emb", **kw)
    before = snapshot(tmp_path / "emb")
    bad = tmp_path / "esm2_bad.pt"
    bad.write_bytes(tiny.read_bytes()[:5000])
    shutil.copy(regression_path(tiny), regression_path(bad))
    with pytest.raises(InputError, match=rf"{bad}: not an ESM-2 checkpoint"):
        embed(fasta, str(bad), tmp_path / "emb", **kw)
    assert snapshot(tmp_path / "emb") == before


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_missing_weights_names_the_offline_command(offline_hub):
    for call in (load_esm, fetch_weights):
        with pytest.raises(MissingWeightsError, match=r"use the README's tiny random encoder: `make main ESM=tiny`"):
            call("esm2_t6_8M_UR50D")


def test_corrupt_hub_cache_file_is_named(offline_hub, tiny):
    model_file, reg_file = hub_files("esm2_t6_8M_UR50D")
    model_file.parent.mkdir(parents=True)
    model_file.write_bytes(tiny.read_bytes()[:4000])  # a half-finished download
    shutil.copy(regression_path(tiny), reg_file)
    with pytest.raises(InputError, match=rf"^{model_file}: not an ESM-2 checkpoint.*Delete this cached file"):
        load_esm("esm2_t6_8M_UR50D")


@pytest.mark.parametrize("damage", ["shard_deleted", "shard_cut", "ids_short", "manifest_garbled"])
def test_damaged_cache_is_named_or_embedded_again(tmp_path, tiny, damage):
    from cafa_mlflow.embed import load_embeddings

    fasta = write_fasta(tmp_path / "in.fasta", SEQS)
    kw = dict(toks_per_batch=64, device="cpu", progress=False, max_residues=20)
    folder = embed(fasta, str(tiny), tmp_path / "emb", **kw).cache_dir
    good = load_embeddings(folder).vectors[:].copy()
    shard = next(folder.glob("shard_*.npy"))
    if damage == "shard_deleted":
        shard.unlink()
    elif damage == "shard_cut":
        shard.write_bytes(shard.read_bytes()[:100])
    elif damage == "ids_short":
        (folder / "ids.txt").write_text("P1\n")
    else:
        (folder / "manifest.json").write_text("{not json")
    if damage == "manifest_garbled":  # the cache counts as unfinished: embedding again repairs it
        assert (load_embeddings(embed(fasta, str(tiny), tmp_path / "emb", **kw).cache_dir).vectors[:] == good).all()
        return
    damaged = shard if damage.startswith("shard") else folder / "ids.txt"
    with pytest.raises(InputError, match=rf"^{damaged}: damaged \(.*\); run `cafa embed` again: it re-embeds"):
        load_embeddings(folder)
    # and embedding again repairs the cache (the damaged shard embedded again, the ids rewritten)
    assert (load_embeddings(embed(fasta, str(tiny), tmp_path / "emb", **kw).cache_dir).vectors[:] == good).all()
