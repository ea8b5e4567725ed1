"""Load fair-esm ESM-2 models by name or local checkpoint, and build tiny test checkpoints."""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import esm
import torch
from esm.model.esm2 import ESM2

from cafa_mlflow.errors import ConfigError, InputError, MissingWeightsError

# fair-esm ESM-2 names -> number of layers (the default representation layer is the last one).
ESM2_LAYERS = {
    "esm2_t6_8M_UR50D": 6,
    "esm2_t12_35M_UR50D": 12,
    "esm2_t30_150M_UR50D": 30,
    "esm2_t33_650M_UR50D": 33,
    "esm2_t36_3B_UR50D": 36,
}
MODEL_URL = "https://dl.fbaipublicfiles.com/fair-esm/models/{name}.pt"
REGRESSION_URL = "https://dl.fbaipublicfiles.com/fair-esm/regression/{name}-contact-regression.pt"
TINY_MARKER = "cafa_tiny"  # key in checkpoint["cfg"] marking checkpoints made by make_tiny_esm
CHECKPOINT_FORMAT = (
    "a fair-esm ESM-2 checkpoint is a torch.save'd dict {'model': weights, 'cfg': {'model': "
    "Namespace(encoder_layers, encoder_embed_dim, encoder_attention_heads, ...)}} in a file named esm2_*.pt, "
    "with <name>-contact-regression.pt beside it: e.g. esm2_t6_8M_UR50D.pt from "
    "https://dl.fbaipublicfiles.com/fair-esm/models/, or one written by `cafa make-tiny-esm`"
)
OFFLINE_HINT = "to run offline without weights, use the README's tiny random encoder: `make main ESM=tiny`"
# What torch.load and fair-esm raise on a file that is not (or no longer) a checkpoint they can read:
# random bytes, a truncated zip, a pickle of other objects, weights of another shape.
_LOAD_ERRORS = (
    pickle.UnpicklingError,
    RuntimeError,
    EOFError,
    KeyError,
    ValueError,
    AttributeError,
    TypeError,
    IndexError,
    zipfile.BadZipFile,
    ImportError,
    OSError,  # e.g. EINVAL when memory-mapping a cut zip
)


def not_a_checkpoint(path: Path | str, err: BaseException | None = None) -> InputError:
    """The InputError for a file that is not a readable fair-esm ESM-2 checkpoint, saying what one is."""
    text = " ".join(str(err).split())
    if isinstance(err, pickle.UnpicklingError):  # torch's weights-only text runs on for lines: keep its gist
        text = text.split(". ")[0]
    why = f" ({type(err).__name__}: {text[:200]})" if err is not None else ""
    return InputError(f"{path}: not an ESM-2 checkpoint in fair-esm's format{why}; {CHECKPOINT_FORMAT}.")


def _torch_load(path: Path | str, mmap: bool = False) -> Any:
    # torch >= 2.6 loads weights_only by default; fair-esm checkpoints pickle an argparse.Namespace.
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(str(path), map_location="cpu", mmap=mmap)
    except _LOAD_ERRORS as err:
        if mmap and isinstance(err, RuntimeError) and not zipfile.is_zipfile(path):
            raise  # legacy (non-zip) torch.save format cannot be memory-mapped: the caller loads it whole
        raise not_a_checkpoint(path, err) from err


def _checkpoint_cfg(path: Path) -> dict:
    """The cfg of a local checkpoint, read without loading its weights when the format allows."""
    try:  # mmap: reads the cfg, not gigabytes of weights
        data = _torch_load(path, mmap=True)
    except RuntimeError:  # legacy (non-zip) torch.save format cannot be memory-mapped
        data = _torch_load(path)
    cfg = data.get("cfg") if isinstance(data, dict) else None
    if not (isinstance(cfg, dict) and hasattr(cfg.get("model"), "encoder_layers") and "model" in data):
        raise not_a_checkpoint(path)
    return cfg


def is_local_checkpoint(esm_model: str) -> bool:
    """True when `esm_model` names a file rather than a fair-esm model name."""
    return esm_model not in ESM2_LAYERS


def regression_path(checkpoint: Path) -> Path:
    """The contact-regression file fair-esm expects beside a checkpoint."""
    return checkpoint.with_name(checkpoint.stem + "-contact-regression.pt")


def _regression_file(checkpoint: Path) -> Path:
    """The contact-regression file of a local checkpoint; a clear error when it is missing."""
    reg = regression_path(checkpoint)
    if not reg.is_file():
        raise MissingWeightsError(
            f"{reg} is missing: fair-esm needs the contact-regression file beside {checkpoint.name}."
        )
    return reg


def hub_files(name: str) -> tuple[Path, Path]:
    """Where fair-esm's hub loader keeps the weights of `name` (torch.hub.get_dir()/checkpoints)."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    return folder / f"{name}.pt", folder / f"{name}-contact-regression.pt"


def _check_name_or_path(esm_model: str) -> None:
    if is_local_checkpoint(esm_model) and not Path(esm_model).is_file():
        raise ConfigError(
            f"esm_model {esm_model!r} is neither a fair-esm ESM-2 name ({', '.join(ESM2_LAYERS)}) "
            "nor an existing checkpoint file; fix embed.esm_model in params.yaml or pass --esm-model."
        )


def model_identity(esm_model: str) -> str:
    """Cache identity: the name for hub models, 'sha256:<hex>' of the file for local checkpoints."""
    _check_name_or_path(esm_model)
    if not is_local_checkpoint(esm_model):
        return esm_model
    stat = os.stat(esm_model)
    return _file_sha256(os.path.realpath(esm_model), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """'sha256:<hex>' of a file, hashed once per (path, size, mtime): settings compare and cache keys ask
    for it many times per step, and a 3B checkpoint is gigabytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def model_label(esm_model: str) -> str:
    """Human label for tracking: the name, 'tiny:<file>' for make_tiny_esm output, else 'local:<file>'."""
    _check_name_or_path(esm_model)
    if not is_local_checkpoint(esm_model):
        return esm_model
    stat = os.stat(esm_model)
    return _checkpoint_label(os.path.realpath(esm_model), stat.st_size, stat.st_mtime_ns, Path(esm_model).name)


@functools.lru_cache(maxsize=16)
def _checkpoint_label(path: str, size: int, mtime_ns: int, name: str) -> str:
    """model_label of a local checkpoint, read once per file version (every run start asks for it)."""
    prefix = "tiny" if _checkpoint_cfg(Path(path)).get(TINY_MARKER) else "local"
    return f"{prefix}:{name}"


def default_layer(esm_model: str) -> int | None:
    """Last layer of a named model; None for local checkpoints (known only after loading)."""
    return ESM2_LAYERS.get(esm_model)


def resolve_layer(layer: int, num_layers: int) -> int:
    """Map -1 (last) and other negative layers to 0..num_layers."""
    resolved = num_layers + 1 + layer if layer < 0 else layer
    if not 0 <= resolved <= num_layers:
        raise ConfigError(f"embed.layer={layer} is out of range for a {num_layers}-layer model; use -1 for the last.")
    return resolved


def _missing_weights(name: str, err: Exception) -> MissingWeightsError:
    model_file, reg_file = hub_files(name)
    return MissingWeightsError(
        f"Weights for {name} are not in the torch hub cache and could not be downloaded ({err}). "
        f"Put {model_file.name} (from {MODEL_URL.format(name=name)}) and {reg_file.name} "
        f"(from {REGRESSION_URL.format(name=name)}) in the folder {model_file.parent} "
        f"(or set TORCH_HOME), or pass a local checkpoint path as esm_model; {OFFLINE_HINT}."
    )


def _build(name: str, path: Path, model_data: Any, reg_path: Path, reg_data: Any) -> tuple[ESM2, esm.Alphabet]:
    """fair-esm's model from loaded files; weights that do not fit the cfg are an InputError naming them."""
    if not (isinstance(reg_data, dict) and isinstance(reg_data.get("model"), dict)):
        raise not_a_checkpoint(reg_path)
    try:
        return esm.pretrained.load_model_and_alphabet_core(name, model_data, reg_data)
    except _LOAD_ERRORS as err:
        raise not_a_checkpoint(path, err) from err


def _load_hub(name: str) -> tuple[ESM2, esm.Alphabet]:
    loaded = []
    for url, path in zip((MODEL_URL.format(name=name), REGRESSION_URL.format(name=name)), hub_files(name)):
        if path.is_file():  # a corrupt (e.g. half-downloaded) cached file: name it so it can be deleted
            try:
                loaded.append(_torch_load(path))
            except InputError as err:
                raise InputError(f"{err} Delete this cached file to download it again.") from err
            continue
        try:
            with torch.serialization.safe_globals([argparse.Namespace]):
                # fair-esm downloads the missing file into the hub cache and loads it
                loaded.append(esm.pretrained.load_hub_workaround(url))
        except Exception as err:  # any network/IO failure: never fall back silently
            raise _missing_weights(name, err) from err
    return _build(name, hub_files(name)[0], loaded[0], hub_files(name)[1], loaded[1])


def _load_local(path: Path) -> tuple[ESM2, esm.Alphabet]:
    _checkpoint_cfg(path)  # the format, before the regression file or the weights
    reg = _regression_file(path)
    # fair-esm picks the ESM-2 loader by the name's 'esm2' prefix; the cfg check above already proved the format.
    name = path.stem if path.stem.startswith("esm2") else f"esm2_{path.stem}"
    return _build(name, path, _torch_load(path), reg, _torch_load(reg))


def fetch_weights(esm_model: str) -> None:
    """Have the weights at hand without loading the model: hub names are downloaded once into the hub
    cache (fair-esm's own paths), local checkpoints are checked. Lets a long chain fail at its start."""
    _check_name_or_path(esm_model)
    if is_local_checkpoint(esm_model):
        _checkpoint_cfg(Path(esm_model))
        _regression_file(Path(esm_model))
        return
    urls = (MODEL_URL.format(name=esm_model), REGRESSION_URL.format(name=esm_model))
    for url, path in zip(urls, hub_files(esm_model)):
        if not path.is_file():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.hub.download_url_to_file(url, str(path))
            except Exception as err:  # offline: say where the file goes
                raise _missing_weights(esm_model, err) from err


def load_esm(esm_model: str) -> tuple[ESM2, esm.Alphabet]:
    """Load an ESM-2 model (eval mode, CPU) and its alphabet from a fair-esm name or a local checkpoint."""
    _check_name_or_path(esm_model)
    if is_local_checkpoint(esm_model):
        model, alphabet = _load_local(Path(esm_model))
    else:
        model, alphabet = _load_hub(esm_model)
    if not isinstance(model, ESM2):
        raise InputError(f"{esm_model} is not an ESM-2 model; only ESM-2 checkpoints are supported.")
    return model.eval(), alphabet


def make_tiny_esm(out_path: str | Path, layers: int = 2, dim: int = 64, heads: int = 4, seed: int = 0) -> Path:
    """Write a randomly initialised (seeded) ESM-2 in fair-esm checkpoint format, plus its regression file.

    For tests and smoke runs only: the checkpoint's cfg carries a marker so model_label() reports 'tiny:'.
    """
    out = Path(out_path)
    if out.suffix != ".pt":
        raise InputError(f"{out}: the checkpoint file name must end with '.pt' (fair-esm's rule), e.g. /tmp/tiny.pt")
    if dim % heads:
        raise ConfigError(f"dim={dim} must be divisible by heads={heads}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ESM2(num_layers=layers, embed_dim=dim, attention_heads=heads, alphabet="ESM-1b", token_dropout=True)
    state = model.state_dict()
    regression = {k: v for k, v in state.items() if k.startswith("contact_head.regression.")}
    # Official checkpoints prefix weights with "encoder."; fair-esm strips it when loading.
    weights = {"encoder." + k: v for k, v in state.items() if k not in regression}
    cfg = {
        "model": argparse.Namespace(
            encoder_layers=layers, encoder_embed_dim=dim, encoder_attention_heads=heads, token_dropout=True
        ),
        TINY_MARKER: True,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    for path, obj in ((out, {"model": weights, "cfg": cfg}), (regression_path(out), {"model": regression})):
        tmp = path.with_name(path.name + ".tmp")
        torch.save(obj, tmp)
        tmp.replace(path)
    return out
