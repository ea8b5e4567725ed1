"""Helpers for the embedding tests: tiny checkpoints, FASTA files and a direct fair-esm reference."""

from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np
import pytest
import torch

# Unsorted lengths so that length-sorted batching reorders them; two exceed the tests' max_residues=20.
SEQS = {
    "P1": "MKTAYIAKQRQISFVKSHFSRQ",  # 22 > 20
    "P2": "MSEQ",
    "P3": "GAVLIPFWMSTCYNQDEKRHGAVLIPF",  # 27
    "P4": "ACDEFGHIK",
    "P5": "MKKLLPTAAAGLLLLAAQPAMA",  # 22
    "P6": "WYV",
}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models gain nothing from threads; on a shared 2-core machine extra threads only spin."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def one_thread_env(env: dict) -> dict:
    """The same for child processes (torchrun already sets OMP_NUM_THREADS=1 per rank)."""
    return {**env, "OMP_NUM_THREADS": "1"}


def write_fasta(path: Path, seqs: dict[str, str]) -> Path:
    path.write_text("".join(f">{pid}\n{seq}\n" for pid, seq in seqs.items()))
    return path


def direct_vector(model, alphabet, residues: str, layer: int, pooling: str = "mean") -> np.ndarray:
    """fair-esm's own batch converter and forward pass on one unpadded sequence."""
    _, _, tokens = alphabet.get_batch_converter()([("x", residues)])
    with torch.no_grad():
        reps = model(tokens, repr_layers=[layer])["representations"][layer][0]
    vec = reps[0] if pooling == "cls" else reps[1 : len(residues) + 1].mean(0)
    return vec.numpy()


def same_tree(a: Path, b: Path) -> list[str]:
    """Names of files that differ (or exist on one side only) between two cache folders."""
    names = sorted({p.name for p in a.iterdir()} | {p.name for p in b.iterdir()})
    return [
        n for n in names if not ((a / n).is_file() and (b / n).is_file() and filecmp.cmp(a / n, b / n, shallow=False))
    ]


SETTING_DEFAULTS = dict(
    layer=-1, strategy="balanced", window=1022, stride=256, pooling="mean", precision="fp32", max_residues=1022
)


def split_args(esm_model, **kw):
    """(EmbedSettings, runtime kwargs) of embed_fasta from one flat keyword set (test shorthand)."""
    from cafa_mlflow.embed.settings import EmbedSettings

    settings = {k: kw.pop(k, v) for k, v in SETTING_DEFAULTS.items()}
    return EmbedSettings(esm_model=str(esm_model), **settings), kw


def embed(fasta, esm_model, out, **kw):
    """embed_fasta with settings and runtime options given as one keyword set."""
    from cafa_mlflow.embed import embed_fasta

    settings, runtime = split_args(esm_model, **kw)
    return embed_fasta(fasta, settings, out, **runtime)
