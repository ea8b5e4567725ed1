"""Model loading: hub names offline, local checkpoints, and device/precision choice with mocked CUDA."""

from __future__ import annotations

import re
import shutil
import urllib.error

import numpy as np
import pytest
import torch
from esm_fixtures import SEQS, embed, one_torch_thread, write_fasta  # noqa: F401 (fixture)

from cafa_mlflow.embed import (
    fetch_weights,
    load_embeddings,
    load_esm,
    make_tiny_esm,
    model_identity,
    model_label,
)
from cafa_mlflow.embed.device import Dist, autocast_dtype, init_distributed, resolve_device
from cafa_mlflow.embed.model import TINY_MARKER, hub_files
from cafa_mlflow.errors import ConfigError, InputError, MissingWeightsError

NAME = "esm2_t6_8M_UR50D"


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty torch hub cache, and downloads that fail at once like a machine without internet."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    calls = []

    def no_network(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "torch" / "hub" / "checkpoints", calls


def test_missing_weights_error_names_files_folder_and_urls(offline_hub):
    folder, calls = offline_hub
    with pytest.raises(MissingWeightsError) as err:
        load_esm(NAME)
    msg = str(err.value)
    assert f"{NAME}.pt" in msg and f"{NAME}-contact-regression.pt" in msg
    assert str(folder) in msg
    assert f"https://dl.fbaipublicfiles.com/fair-esm/models/{NAME}.pt" in msg
    assert f"https://dl.fbaipublicfiles.com/fair-esm/regression/{NAME}-contact-regression.pt" in msg
    assert calls == [f"https://dl.fbaipublicfiles.com/fair-esm/models/{NAME}.pt"]  # tried fair-esm's download once


def test_fetch_weights_fails_at_once_offline_and_passes_cached_or_local(offline_hub, tmp_path):
    folder, calls = offline_hub
    with pytest.raises(MissingWeightsError, match=re.escape(str(folder))):
        fetch_weights(NAME)
    assert calls == [f"https://dl.fbaipublicfiles.com/fair-esm/models/{NAME}.pt"]
    tiny = make_tiny_esm(tmp_path / "esm2_src.pt", layers=1, dim=16, heads=2)
    for src, dst in zip((tiny, tiny.with_name("esm2_src-contact-regression.pt")), hub_files(NAME)):
        shutil.copy(src, dst)
    fetch_weights(NAME)  # cached: no download tried
    fetch_weights(str(tiny))
    assert len(calls) == 1
    tiny.with_name("esm2_src-contact-regression.pt").unlink()
    with pytest.raises(MissingWeightsError, match="contact-regression"):
        fetch_weights(str(tiny))


def test_name_loads_from_hub_cache_without_network(offline_hub, tmp_path):
    folder, calls = offline_hub
    tiny = make_tiny_esm(tmp_path / "esm2_src.pt", layers=6, dim=32, heads=4)
    folder.mkdir(parents=True)
    model_file, reg_file = hub_files(NAME)
    assert model_file.parent == folder
    shutil.copy(tiny, model_file)
    shutil.copy(tiny.with_name("esm2_src-contact-regression.pt"), reg_file)
    model, alphabet = load_esm(NAME)
    assert (model.num_layers, model.embed_dim) == (6, 32) and not model.training and calls == []
    assert model_label(NAME) == NAME and model_identity(NAME) == NAME


def test_local_checkpoint_identity_and_missing_regression(tmp_path):
    a = make_tiny_esm(tmp_path / "esm2_a.pt", seed=0)
    b = make_tiny_esm(tmp_path / "x" / "esm2_a.pt", seed=1)
    assert model_identity(str(a)).startswith("sha256:") and model_identity(str(a)) != model_identity(str(b))
    plain = torch.load(a, weights_only=False)
    del plain["cfg"][TINY_MARKER]  # as in a real fair-esm checkpoint
    torch.save(plain, tmp_path / "esm2_plain.pt")
    assert model_label(str(tmp_path / "esm2_plain.pt")) == "local:esm2_plain.pt"
    with pytest.raises(MissingWeightsError, match="esm2_plain-contact-regression.pt"):
        load_esm(str(tmp_path / "esm2_plain.pt"))
    torch.save({"model": {}, "args": None}, tmp_path / "esm1b.pt")  # not ESM-2's checkpoint format
    with pytest.raises(InputError, match="esm1b.pt: not an ESM-2 checkpoint"):
        load_esm(str(tmp_path / "esm1b.pt"))


def test_local_checkpoint_embeds_like_its_hub_copy(tmp_path, offline_hub):
    """A path and a hub name holding the same weights give the same vectors, under different cache keys."""
    folder, _ = offline_hub
    tiny = make_tiny_esm(tmp_path / "tiny.pt", layers=6, dim=32, heads=4)
    folder.mkdir(parents=True)
    model_file, reg_file = hub_files(NAME)
    shutil.copy(tiny, model_file)
    shutil.copy(tiny.with_name("tiny-contact-regression.pt"), reg_file)
    fasta = write_fasta(tmp_path / "in.fasta", SEQS)
    kw = dict(toks_per_batch=64, device="cpu", progress=False, max_residues=20)
    local = embed(fasta, str(tiny), tmp_path / "out", **kw)
    hub = embed(fasta, NAME, tmp_path / "out", **kw)
    assert local.cache_dir != hub.cache_dir and local.stats["layer"] == hub.stats["layer"] == 6
    assert load_embeddings(local.cache_dir).manifest["model_label"] == "tiny:tiny.pt"
    assert np.array_equal(
        np.asarray(load_embeddings(local.cache_dir).vectors), np.asarray(load_embeddings(hub.cache_dir).vectors)
    )


def test_device_auto_uses_cuda_when_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")  # no GPU: the CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda", local_rank=3) == torch.device("cuda", 1)  # torchrun rank -> its GPU
    assert resolve_device("cpu") == torch.device("cpu")


def test_cuda_requested_without_gpu_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="choose one of"):
        resolve_device("tpu")


@pytest.mark.parametrize("bf16_ok", [True, False])
def test_autocast_dtype_choice(monkeypatch, bf16_ok):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_ok)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Mock GPU")
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    assert autocast_dtype("fp32", cuda) is None and autocast_dtype("fp32", cpu) is None
    assert autocast_dtype("fp16", cuda) == torch.float16
    assert autocast_dtype("bf16", cpu) == torch.bfloat16
    if bf16_ok:
        assert autocast_dtype("bf16", cuda) == torch.bfloat16
    else:
        with pytest.raises(ConfigError, match="Mock GPU does not support bf16"):
            autocast_dtype("bf16", cuda)
    with pytest.raises(ConfigError, match="fp16 is for CUDA"):
        autocast_dtype("fp16", cpu)


def test_torchrun_on_gpus_uses_nccl_and_the_local_gpu(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.distributed, "is_available", lambda: True)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda backend: calls.append(("init", backend)))
    monkeypatch.setattr(torch.cuda, "set_device", lambda dev: calls.append(("set_device", str(dev))))
    assert init_distributed(Dist(1, 2, 1), torch.device("cuda", 1))
    assert calls == [("set_device", "cuda:1"), ("init", "nccl")]
    calls.clear()
    assert init_distributed(Dist(0, 2, 0), torch.device("cpu")) and calls == [("init", "gloo")]
    calls.clear()
    assert not init_distributed(Dist(0, 1, 0), torch.device("cpu")) and calls == []  # no launcher, no group
