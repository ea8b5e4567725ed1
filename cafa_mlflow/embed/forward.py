"""Token-budget batching and the ESM-2 forward pass that turns residue strings into pooled vectors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext

import esm
import numpy as np
import torch

from cafa_mlflow.embed.encoder import representations
from cafa_mlflow.errors import InputError


def token_table(alphabet: esm.Alphabet) -> np.ndarray:
    """Byte -> token index lookup for single-letter tokens; -1 for letters the alphabet lacks."""
    table = np.full(256, -1, dtype=np.int64)
    for tok, idx in alphabet.tok_to_idx.items():
        if len(tok) == 1:
            table[ord(tok)] = idx
    return table


def check_letters(ids: Sequence[str], seqs: Sequence[str], table: np.ndarray) -> None:
    """Raise InputError naming the first protein with a letter ESM-2 cannot encode."""
    for pid, seq in zip(ids, seqs):
        codes = table[np.frombuffer(seq.encode("ascii", "replace"), dtype=np.uint8)]
        if (codes < 0).any():
            bad = sorted({seq[i] for i in np.flatnonzero(codes < 0)})
            raise InputError(f"protein {pid!r} has letters ESM-2 cannot encode: {''.join(bad)!r}; fix or remove it.")


def token_batches(lengths: Sequence[int], toks_per_batch: int) -> list[list[int]]:
    """Group indices, longest first, so that padded tokens (longest x count) stay within the budget.

    Lengths include BOS/EOS. A unit longer than the budget forms a batch of its own."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    for i in order:
        if batches and lengths[batches[-1][0]] * (len(batches[-1]) + 1) <= toks_per_batch:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def _tokens(seqs: Sequence[str], table: np.ndarray, alphabet: esm.Alphabet) -> torch.Tensor:
    width = max(len(s) for s in seqs) + 2
    out = np.full((len(seqs), width), alphabet.padding_idx, dtype=np.int64)
    out[:, 0] = alphabet.cls_idx
    for row, seq in enumerate(seqs):
        out[row, 1 : len(seq) + 1] = table[np.frombuffer(seq.encode("ascii"), dtype=np.uint8)]
        out[row, len(seq) + 1] = alphabet.eos_idx
    return torch.from_numpy(out)


@torch.inference_mode()
def embed_units(
    model: torch.nn.Module,
    alphabet: esm.Alphabet,
    units: Sequence[str],
    layer: int,
    pooling: str,
    toks_per_batch: int,
    device: torch.device,
    dtype: torch.dtype | None = None,
    on_batch: Callable[[int], None] | None = None,
    fair_esm: bool = False,
) -> np.ndarray:
    """Float32 (len(units), dim) vectors in input order: residue mean (BOS/EOS/padding excluded) or BOS for 'cls'.

    The forward pass is encoder.representations (fused attention, stops at `layer`); fair_esm=True runs
    fair-esm's own module instead (the reference, for benchmarks and tests). `on_batch(n_residues)` is called
    after each batch (progress bars)."""
    table = token_table(alphabet)
    out = np.empty((len(units), model.embed_dim), dtype=np.float32)
    autocast = torch.autocast(device_type=device.type, dtype=dtype) if dtype is not None else nullcontext()
    for batch in token_batches([len(u) + 2 for u in units], toks_per_batch):
        seqs = [units[i] for i in batch]
        tokens = _tokens(seqs, table, alphabet).to(device, non_blocking=True)
        with autocast:
            if fair_esm:
                reps = model(tokens, repr_layers=[layer])["representations"][layer]
            else:
                reps = representations(model, tokens, layer)
        reps = reps.float()
        if pooling == "cls":
            vecs = reps[:, 0]
        else:
            lengths = torch.tensor([len(s) for s in seqs], device=device)
            pos = torch.arange(reps.shape[1], device=device)
            mask = (pos[None, :] >= 1) & (pos[None, :] <= lengths[:, None])
            vecs = (reps * mask[..., None]).sum(1) / lengths[:, None]
        out[batch] = vecs.cpu().numpy()
        if on_batch is not None:
            on_batch(sum(len(s) for s in seqs))
    return out
