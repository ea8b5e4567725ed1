"""Our ESM-2 forward (cafa_mlflow.embed.encoder) against fair-esm's own module: representations, pooled vectors
under every long-sequence strategy, bf16, and gradients where fine-tuning trains."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from esm.data import Alphabet
from esm.model.esm2 import ESM2
from esm_fixtures import one_torch_thread  # noqa: F401 (fixture)

from cafa_mlflow.embed import EmbedSettings, load_esm, make_tiny_esm
from cafa_mlflow.embed.cache import cache_key
from cafa_mlflow.embed.encoder import representations, sdpa_backend
from cafa_mlflow.embed.forward import embed_units
from cafa_mlflow.embed.units import STRATEGIES, combine, split_units

FP32_TOL = 1e-4  # max abs difference to fair-esm in fp32 (measured: about 2e-6)
AMINO = "ACDEFGHIKLMNPQRSTVWYXBUZO"
ALPHABET = Alphabet.from_architecture("ESM-1b")


def _seqs(lengths, seed=0):
    rng = random.Random(seed)
    return ["".join(rng.choice(AMINO) for _ in range(n)) for n in lengths]


def _tokens(seqs):
    return ALPHABET.get_batch_converter()([(str(i), s) for i, s in enumerate(seqs)])[2]


def _arch(layers, dim, heads, seed=0):
    torch.manual_seed(seed)
    return ESM2(num_layers=layers, embed_dim=dim, attention_heads=heads, alphabet=ALPHABET).eval()


def _reference(model, tokens, layers):
    with torch.inference_mode():
        return model(tokens, repr_layers=list(layers))["representations"]


def _max_diff(ours, ref, tokens, padding_idx):
    real = tokens.ne(padding_idx)  # padded positions are nobody's output (compared below as well, looser)
    return float((ours - ref)[real].abs().max())


@pytest.fixture(scope="module")
def tiny():
    return _arch(2, 64, 4)


@pytest.fixture(scope="module")
def esm8m():
    return _arch(6, 320, 20)  # esm2_t6_8M_UR50D's architecture, random weights


@pytest.fixture(scope="module")
def esm35m():
    return _arch(12, 480, 20)  # esm2_t12_35M_UR50D's architecture


def test_every_layer_of_a_tiny_checkpoint_equals_fair_esm(tmp_path):
    model, alphabet = load_esm(str(make_tiny_esm(tmp_path / "esm2_tiny.pt", layers=3, dim=64, heads=4, seed=3)))
    tokens = _tokens(_seqs([1, 9, 30, 4]))
    ref = _reference(model, tokens, range(4))
    with torch.inference_mode():
        for layer in range(4):
            ours = representations(model, tokens, layer)
            assert ours.shape == ref[layer].shape
            assert _max_diff(ours, ref[layer], tokens, alphabet.padding_idx) <= FP32_TOL, layer
            assert float((ours - ref[layer]).abs().max()) <= 10 * FP32_TOL  # padded rows too: same keys masked


@pytest.mark.parametrize("arch", ["esm8m", "esm35m"])
def test_real_architectures_equal_fair_esm_across_padding_and_lengths(request, arch):
    model = request.getfixturevalue(arch)
    last = model.num_layers
    cases = [[1], [1, 2, 3], [5, 64, 17, 200, 1], [128, 128]]  # one residue, padding to 200, none (equal lengths)
    with torch.inference_mode():
        for lengths in cases:
            tokens = _tokens(_seqs(lengths, seed=len(lengths)))
            ref = _reference(model, tokens, [last // 2, last])
            for layer in (last // 2, last):  # an early layer (no final layer norm) and the last
                diff = _max_diff(representations(model, tokens, layer), ref[layer], tokens, model.padding_idx)
                assert diff <= FP32_TOL, (lengths, layer, diff)


def test_longest_unit_1022_residues_equals_fair_esm(esm8m):
    tokens = _tokens(_seqs([1022, 300], seed=7))  # 1,024 tokens with BOS/EOS, the short one padded
    ref = _reference(esm8m, tokens, [6])[6]
    with torch.inference_mode():
        assert _max_diff(representations(esm8m, tokens, 6), ref, tokens, esm8m.padding_idx) <= FP32_TOL


def test_mask_tokens_get_fair_esm_token_dropout_scaling(tiny):
    seqs = ["MK<mask>LV<mask>A", "AC<mask>D", "WYV"]  # different observed mask ratios per row, one without
    tokens = _tokens(seqs)
    assert int(tokens.eq(tiny.mask_idx).sum()) == 3
    ref = _reference(tiny, tokens, [0, 2])
    with torch.inference_mode():
        for layer in (0, 2):
            assert _max_diff(representations(tiny, tokens, layer), ref[layer], tokens, tiny.padding_idx) <= FP32_TOL


def test_stops_at_the_layer_and_checks_it(tiny):
    tokens = _tokens(["MKV"])
    calls = []
    hooks = [layer.register_forward_hook(lambda *a: calls.append(1)) for layer in tiny.layers]
    hooks.append(tiny.lm_head.register_forward_hook(lambda *a: calls.append("lm")))
    try:
        with torch.inference_mode():
            representations(tiny, tokens, 1)
    finally:
        for h in hooks:
            h.remove()
    assert calls == []  # fair-esm's modules (layers, language-model head) are never called: their weights are
    with pytest.raises(ValueError, match="out of range"):
        representations(tiny, tokens, 3)


@pytest.mark.parametrize(
    "strategy, pooling", [(s, p) for s in STRATEGIES for p in ("mean", "max", "cls") if (s, p) != ("chunks", "max")]
)
def test_pooled_vectors_of_every_strategy_equal_fair_esm(esm8m, strategy, pooling):
    seqs = _seqs([3, 40, 75, 130], seed=11)  # max_residues 64, window 32, overlap 8: split into 1..5 units
    unit_lists = [split_units(s, strategy, 32, 8, 64) for s in seqs]
    flat = [u for units in unit_lists for u in units]
    counts = np.array([len(u) for u in unit_lists])
    assert counts.max() > 1 or strategy == "balanced"
    unit_pooling = "cls" if pooling == "cls" else "mean"
    vecs = {
        fair: combine(
            embed_units(esm8m, ALPHABET, flat, 6, unit_pooling, 300, torch.device("cpu"), fair_esm=fair),
            counts,
            strategy,
            pooling,
        )
        for fair in (True, False)
    }
    assert float(np.abs(vecs[True] - vecs[False]).max()) <= FP32_TOL


@pytest.mark.slow
def test_long_proteins_under_every_strategy_equal_fair_esm_on_35m(esm35m):
    """Proteins over 1,022 residues at the product's settings (window 1022, overlap 256), 35M architecture."""
    seqs = _seqs([1100, 600], seed=5)
    for strategy in STRATEGIES:
        unit_lists = [split_units(s, strategy, 1022, 256, 1022) for s in seqs]
        flat = [u for units in unit_lists for u in units]
        counts = np.array([len(u) for u in unit_lists])
        vecs = [
            combine(
                embed_units(esm35m, ALPHABET, flat, 12, "mean", 4096, torch.device("cpu"), fair_esm=fair),
                counts,
                strategy,
                "mean",
            )
            for fair in (True, False)
        ]
        assert float(np.abs(vecs[0] - vecs[1]).max()) <= FP32_TOL, strategy


def _bf16_errors(model, tokens):
    layer = model.num_layers
    real = tokens.ne(model.padding_idx)
    fp32 = _reference(model, tokens, [layer])[layer]
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        fair = model(tokens, repr_layers=[layer])["representations"][layer].float()
        ours = representations(model, tokens, layer).float()
    return float((ours - fp32)[real].abs().max()), float((fair - fp32)[real].abs().max())


def test_bf16_is_as_close_to_fp32_as_fair_esm_bf16(esm8m):
    """bf16 autocast: our deviation from fp32 stays within fair-esm's own bf16 deviation (measured on the 8M
    architecture: both about 0.015 max abs on layer-normed outputs of magnitude ~1-4)."""
    ours, fair = _bf16_errors(esm8m, _tokens(_seqs([5, 100, 250], seed=2)))
    assert ours <= 1.5 * fair + 1e-3 and ours < 0.05, (ours, fair)


def test_weight_changes_reach_the_cached_fused_projection(tiny):
    model = _arch(2, 64, 4, seed=1)
    tokens = _tokens(_seqs([6, 12]))
    with torch.inference_mode():
        before = representations(model, tokens, 2)
    with torch.no_grad():  # as an optimizer step does: in place
        model.layers[0].self_attn.k_proj.weight.mul_(1.5)
        model.layers[1].self_attn.v_proj.bias.add_(0.1)
    ref = _reference(model, tokens, [2])[2]
    with torch.inference_mode():
        after = representations(model, tokens, 2)
    assert _max_diff(after, ref, tokens, model.padding_idx) <= FP32_TOL
    assert float((after - before).abs().max()) > 1e-2


@pytest.mark.parametrize("trained", ["last", "first"])
def test_gradients_flow_where_finetuning_trains_and_equal_fair_esm(trained):
    """unfreeze_layers=1 trains the last layer and the final norm; training the first instead puts cached
    (frozen) layers after a trained one. Caches are first built under inference mode, as embedding does."""
    tokens = _tokens(_seqs([7, 20, 13], seed=4))
    grads = {}
    for fair in (True, False):
        model = _arch(3, 64, 4, seed=2)
        with torch.inference_mode():
            representations(model, tokens, 3)  # fused weights and rotary table cached in inference mode
        model.train().requires_grad_(False)
        block = model.layers[-1] if trained == "last" else model.layers[0]
        for p in [*block.parameters(), *model.emb_layer_norm_after.parameters()]:
            p.requires_grad_(True)
        reps = model(tokens, repr_layers=[3])["representations"][3] if fair else representations(model, tokens, 3)
        (reps[tokens.ne(model.padding_idx)].pow(2).mean()).backward()
        grads[fair] = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
        assert all(p.grad is None for p in model.parameters() if not p.requires_grad)
    assert grads[True].keys() == grads[False].keys()
    assert {n.split(".")[-2] for n in grads[False]} >= {"q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"}
    for name, g in grads[False].items():
        assert g is not None and float(g.abs().max()) > 0, name
        torch.testing.assert_close(g, grads[True][name], rtol=1e-4, atol=1e-5)


def test_sdpa_backend_is_the_fused_kernel_on_cpu(tiny):
    assert sdpa_backend(tiny, _tokens(["MKV", "A"])) == "FLASH_ATTENTION"  # torch's name for its CPU fused kernel


def test_cache_keys_of_caches_made_by_fair_esm_stay_valid():
    """Keys as computed before this forward existed: equal outputs, so no field names the forward."""
    keys = {}
    for strategy, precision in (("balanced", "fp32"), ("chunks", "bf16")):
        settings = EmbedSettings("esm2_t6_8M_UR50D", -1, strategy, 1022, 256, "mean", precision, 1022)
        keys[strategy] = cache_key(settings.key("0" * 64))
    assert keys == {
        "balanced": "a7657aa095b53af83e7b62c76a33285d721f2e707e24c82dec8bccbfd33f5de4",
        "chunks": "a6ff7590f8d966c7ff60c0d52b96d68cb4c22fd59335113a42d31425797db11f",
    }
