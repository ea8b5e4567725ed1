"""ESM-2 representations by our own forward pass over fair-esm's weights (fair-esm stays loader and reference).

`representations(model, tokens, layer)` returns what `model(tokens, repr_layers=[layer])["representations"][layer]`
returns for a fair-esm `ESM2` (same alphabet, tokens, embedding, token-dropout scaling, padding zeroing, pre-norm
layers with rotary self-attention, final layer norm on the last layer), equal to 1e-4 in fp32 (tests/test_encoder.py),
but computed the short way:

- attention by `torch.nn.functional.scaled_dot_product_attention` with the key-padding mask: a fused kernel on CPU
  and flash / memory-efficient kernels on CUDA; no T x T score matrices per head, no head-averaged attention
  weights (fair-esm computes and discards both in every layer);
- one fused q/k/v projection per layer, batch-first throughout (no T x B transposes);
- rotary embeddings as one complex multiplication over q and k together: the q/k projection rows are permuted
  within each head so that fair-esm's (i, i + head_dim/2) rotation pairs sit side by side (dot products q.k, hence
  attention, do not change under the same permutation of q and k);
- stop after `layer`: no later layers, no language-model head, no contact head.

Fused weights of frozen layers are built once and reused until a weight changes (in-place optimizer steps bump
the tensor version); layers that train (grad enabled and weights requiring grad) rebuild them each call, so
gradients flow to fair-esm's own parameters (fine-tuning, `model: finetune`).
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

MASK_RATIO_TRAIN = 0.15 * 0.8  # fair-esm ESM2.forward's token-dropout constant
_FUSED: weakref.WeakKeyDictionary[nn.Module, tuple[Any, tuple[torch.Tensor, ...]]] = weakref.WeakKeyDictionary()
_ROTARY: dict[tuple, torch.Tensor] = {}


def _plain_tensors() -> contextlib.ExitStack:
    """Cached tensors are made outside inference mode (and without autograd history): a table or fused weight
    first built under embed's torch.inference_mode can then serve a fine-tuning forward that records gradients
    (autograd refuses to save inference tensors)."""
    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode(False))
    stack.enter_context(torch.no_grad())
    return stack


def _pair_order(heads: int, head_dim: int) -> torch.Tensor:
    """Row order putting fair-esm's rotary pairs (i, i + head_dim/2) of each head side by side."""
    half = head_dim // 2
    within = torch.stack([torch.arange(half), torch.arange(half) + half], dim=1).reshape(-1)
    return (torch.arange(heads)[:, None] * head_dim + within[None, :]).reshape(-1)


def _fuse(attn: nn.Module, heads: int, dtype: torch.dtype | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(3D x D weight, 3D bias): q and k rows in rotary-pair order, then v; in `dtype` when given."""
    order = _pair_order(heads, attn.head_dim).to(attn.q_proj.weight.device)
    weight = torch.cat(
        [attn.q_proj.weight.index_select(0, order), attn.k_proj.weight.index_select(0, order), attn.v_proj.weight]
    )
    bias = torch.cat(
        [attn.q_proj.bias.index_select(0, order), attn.k_proj.bias.index_select(0, order), attn.v_proj.bias]
    )
    if dtype is not None:
        weight, bias = weight.to(dtype), bias.to(dtype)
    return weight, bias


def _trains(module: nn.Module) -> bool:
    return torch.is_grad_enabled() and any(p.requires_grad for p in module.parameters())


def _fused_qkv(attn: nn.Module, heads: int, dtype: torch.dtype | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The fused projection of a layer: rebuilt per call where it trains, else cached per weight version."""
    if _trains(attn):
        return _fuse(attn, heads, None)  # autocast casts it per call, as it does fair-esm's weights
    params = (
        attn.q_proj.weight,
        attn.q_proj.bias,
        attn.k_proj.weight,
        attn.k_proj.bias,
        attn.v_proj.weight,
        attn.v_proj.bias,
    )
    key = (dtype, tuple((p.data_ptr(), p._version, p.device, p.dtype) for p in params))
    hit = _FUSED.get(attn)
    if hit is None or hit[0] != key:
        with _plain_tensors():
            hit = (key, _fuse(attn, heads, dtype))
        _FUSED[attn] = hit
    return hit[1]


def _linear(linear: nn.Module, dtype: torch.dtype | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of a Linear; under autocast a cached copy in the autocast dtype for layers that do not train
    (autocast would cast the weights again in every call)."""
    if dtype is None or linear.weight.dtype == dtype or _trains(linear):
        return linear.weight, linear.bias
    params = (linear.weight, linear.bias)
    key = (dtype, tuple((p.data_ptr(), p._version, p.device, p.dtype) for p in params))
    hit = _FUSED.get(linear)
    if hit is None or hit[0] != key:
        with _plain_tensors():
            hit = (key, (linear.weight.to(dtype), linear.bias.to(dtype)))
        _FUSED[linear] = hit
    return hit[1]


def _rotary(length: int, head_dim: int, inv_freq: torch.Tensor) -> torch.Tensor:
    """(T, 1, 1, head_dim/2) complex64 exp(i t f): fair-esm's cos/sin tables (fp32, same formula)."""
    key = (length, head_dim, inv_freq.device, inv_freq.dtype)
    table = _ROTARY.get(key)
    if table is None:
        with _plain_tensors():
            t = torch.arange(length, device=inv_freq.device).type_as(inv_freq)
            freqs = torch.einsum("i,j->ij", t, inv_freq)
            table = torch.polar(torch.ones_like(freqs), freqs)[:, None, None, :]
        if len(_ROTARY) > 64:
            _ROTARY.clear()
        _ROTARY[key] = table
    return table


def _attention_block(
    layer: nn.Module, x: torch.Tensor, mask: torch.Tensor | None, rot: torch.Tensor, cast: torch.dtype | None
) -> torch.Tensor:
    attn = layer.self_attn
    batch, length, dim = x.shape
    heads, head_dim = attn.num_heads, attn.head_dim
    h = F.layer_norm(
        x, (dim,), layer.self_attn_layer_norm.weight, layer.self_attn_layer_norm.bias, layer.self_attn_layer_norm.eps
    )
    weight, bias = _fused_qkv(attn, heads, cast)
    qkv = F.linear(h, weight, bias).view(batch, length, 3, heads, head_dim)
    qk = qkv[:, :, :2]
    if qk.dtype in (torch.float32, torch.float64):
        qk = torch.view_as_real(torch.view_as_complex(qk.unflatten(-1, (head_dim // 2, 2))) * rot).flatten(-2)
    else:  # bf16 / fp16: no complex dtype; rotate in fp32 (as fair-esm, whose fp32 cos/sin tables promote q/k)
        qk = torch.view_as_real(torch.view_as_complex(qk.float().unflatten(-1, (head_dim // 2, 2))) * rot)
        qk = qk.flatten(-2).to(qkv.dtype)
    q, k = qk.unbind(2)
    v = qkv[:, :, 2]
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask)
    out = F.linear(out.transpose(1, 2).reshape(batch, length, dim), *_linear(attn.out_proj, cast))
    return out.add_(x) if out.dtype == x.dtype else x + out  # residual (in place: one buffer less)


def _ffn_block(layer: nn.Module, x: torch.Tensor, cast: torch.dtype | None) -> torch.Tensor:
    norm = layer.final_layer_norm
    h = F.layer_norm(x, (x.shape[-1],), norm.weight, norm.bias, norm.eps)
    h = F.gelu(F.linear(h, *_linear(layer.fc1, cast)))  # exact (erf) GELU, fair-esm's gelu in one pass
    out = F.linear(h, *_linear(layer.fc2, cast))
    return out.add_(x) if out.dtype == x.dtype else x + out


def embed_tokens(model: nn.Module, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """fair-esm's layer-0 representation (token embedding, token-dropout scaling, padding zeroed) and the
    padding mask (True = padding)."""
    padding = tokens.eq(model.padding_idx)
    x = model.embed_scale * model.embed_tokens(tokens)
    if model.token_dropout:
        masked = tokens.eq(model.mask_idx)
        x = x.masked_fill(masked.unsqueeze(-1), 0.0)
        observed = masked.sum(-1).to(x.dtype) / (~padding).sum(-1)
        x = x * (1 - MASK_RATIO_TRAIN) / (1 - observed)[:, None, None]
    return x * (1 - padding.unsqueeze(-1).type_as(x)), padding


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The dtype autocast gives linear layers on this device now; None outside autocast."""
    return torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else None


def representations(model: nn.Module, tokens: torch.Tensor, layer: int) -> torch.Tensor:
    """B x T x D representations of fair-esm ESM2 `model` after `layer` (0..num_layers; the last one layer-normed,
    as fair-esm returns it), for B x T tokens of its alphabet (BOS/EOS/padding as fair-esm's batch converter)."""
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be B x T, got shape {tuple(tokens.shape)}")
    if not 0 <= layer <= model.num_layers:
        raise ValueError(f"layer {layer} is out of range 0..{model.num_layers}")
    x, padding = embed_tokens(model, tokens)
    if layer == 0:
        return x
    mask = None
    if padding.any():  # keys to attend to: B x 1 x 1 x T (fair-esm: -inf on padded keys)
        mask = ~padding[:, None, None, :]
    cast = autocast_dtype(x.device)
    first = model.layers[0].self_attn
    rot = _rotary(tokens.shape[1], first.head_dim, first.rot_emb.inv_freq)
    for block in model.layers[:layer]:
        x = _ffn_block(block, _attention_block(block, x, mask, rot, cast), cast)
    if layer == model.num_layers:
        x = model.emb_layer_norm_after(x)
    return x


def sdpa_backend(model: nn.Module, tokens: torch.Tensor, dtype: torch.dtype | None = None) -> str:
    """Which scaled_dot_product_attention kernel torch selects for this model and token batch (with its
    padding mask, in `dtype`): FLASH_ATTENTION (also the name of the fused CPU kernel), EFFICIENT_ATTENTION,
    CUDNN_ATTENTION or MATH."""
    from torch.nn.attention import SDPBackend

    batch, length = tokens.shape
    heads, head_dim = model.attention_heads, model.embed_dim // model.attention_heads
    q = torch.zeros(batch, heads, length, head_dim, device=tokens.device, dtype=dtype or torch.float32)
    padding = tokens.eq(model.padding_idx)
    mask = ~padding[:, None, None, :] if bool(padding.any()) else None
    try:
        choice = torch._fused_sdp_choice(q, q, q, mask, 0.0, False)
    except (AttributeError, RuntimeError) as err:  # private API: say so rather than fail a benchmark
        return f"unknown ({type(err).__name__})"
    return SDPBackend(choice).name
