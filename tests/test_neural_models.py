import numpy as np
import pytest
import torch
from neural_fixtures import ASPECTS, params, tiny_chunks, tiny_data, tiny_esm, tiny_sequences

from cafa_mlflow.errors import ConfigError
from cafa_mlflow.predictors.neural.data import ChunkInputs, DenseInputs, SequenceInputs
from cafa_mlflow.predictors.neural.losses import build_loss
from cafa_mlflow.predictors.neural.models import ChunkAttention, MultitaskMLP, build_model
from cafa_mlflow.predictors.neural.training import fit_model


def _train_losses(p, inputs, y, **model_kw):
    model = build_model(p, model_kw.get("in_dim"), ASPECTS, model_kw.get("esm"), model_kw.get("alphabet"))
    loss_fn = build_loss(p, y, ASPECTS)
    result = fit_model(model, loss_fn, inputs, y, inputs, y, p)
    return model, [h["train_loss"] for h in result.history], result


@pytest.mark.parametrize("name", ["simple", "multitask"])
def test_dense_models_learn(name):
    x, y = tiny_data()
    _, losses, _ = _train_losses(params(model=name, max_epochs=4), DenseInputs(x), y, in_dim=16)
    assert losses[-1] < 0.8 * losses[0]


def test_chunk_attention_learns():
    x, y = tiny_data()
    _, losses, _ = _train_losses(
        params(model="chunk_attention", max_epochs=4), ChunkInputs(*tiny_chunks(x)), y, in_dim=16
    )
    assert losses[-1] < 0.8 * losses[0]


def test_multitask_heads_map_to_vocabulary_columns():
    torch.manual_seed(0)
    model = MultitaskMLP(16, 8, 0, ASPECTS, 0.0).eval()
    x = torch.randn(5, 16)
    out = model(x)
    h = model.trunk(x)
    for aspect in ("BPO", "CCO", "MFO"):
        cols = np.flatnonzero(ASPECTS == aspect)
        torch.testing.assert_close(out[:, cols], model.heads[aspect](h), rtol=0, atol=0)


def test_chunk_attention_ignores_padding():
    torch.manual_seed(0)
    model = ChunkAttention(16, 8, 8, 0, ASPECTS, 0.0).eval()
    chunks = torch.randn(3, 2, 16)
    mask = torch.tensor([[True, True], [True, False], [True, False]])
    base = model((chunks, mask))
    for extra in (1, 5):
        padded = torch.cat([chunks, 1e3 * torch.randn(3, extra, 16)], dim=1)  # garbage, not zeros
        pmask = torch.cat([mask, torch.zeros(3, extra, dtype=torch.bool)], dim=1)
        torch.testing.assert_close(model((padded, pmask)), base)
    # a single-chunk protein pools to exactly its chunk
    torch.testing.assert_close(model.pool(chunks, mask)[1], chunks[1, 0])


def _finetune(unfreeze: int):
    esm_model, alphabet = tiny_esm()
    seqs, y = tiny_sequences()
    before = {k: v.clone() for k, v in esm_model.state_dict().items()}
    p = params(
        model="finetune",
        finetune_unfreeze_layers=unfreeze,
        max_epochs=3,
        batch_size=8,
        grad_accum_steps=2,
        lr=3e-2,
        finetune_max_residues=16,
    )
    inputs = SequenceInputs(seqs, alphabet, p.finetune_max_residues)
    model, losses, _ = _train_losses(p, inputs, y, esm=esm_model, alphabet=alphabet)
    after = model.esm.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    return losses, changed


def test_finetune_frozen_encoder_unchanged():
    losses, changed = _finetune(0)
    assert losses[-1] < losses[0]
    assert changed == set()


def test_finetune_unfreeze_one_changes_only_last_layer():
    losses, changed = _finetune(1)
    assert losses[-1] < losses[0]
    assert changed and all(k.startswith(("layers.1.", "emb_layer_norm_after.")) for k in changed)
    assert any(k.startswith("layers.1.") for k in changed)


def test_finetune_rejects_too_many_layers():
    esm_model, alphabet = tiny_esm()
    with pytest.raises(ConfigError):
        build_model(params(model="finetune", finetune_unfreeze_layers=3), None, ASPECTS, esm_model, alphabet)
