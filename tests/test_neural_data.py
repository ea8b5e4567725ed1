import numpy as np
import pytest
from neural_fixtures import tiny_chunks, tiny_data, tiny_esm

from cafa_mlflow.errors import InputError
from cafa_mlflow.predictors.neural.data import (
    ChunkInputs,
    DenseInputs,
    SequenceInputs,
    SubsetInputs,
    as_inputs,
    iter_batches,
    label_batch,
    sequence_groups,
    train_val_split,
)


def test_sparse_label_batches_equal_dense_rows():
    _, y = tiny_data()
    dense = y.toarray()
    seen = []
    for idx in iter_batches(y.shape[0], 10, np.random.default_rng(3)):
        np.testing.assert_array_equal(label_batch(y, idx).numpy(), dense[idx])
        assert label_batch(y, idx).dtype.is_floating_point
        seen.extend(idx.tolist())
    assert sorted(seen) == list(range(y.shape[0]))  # every row exactly once


def test_dense_inputs_from_float16_memmap(tmp_path):
    x, _ = tiny_data()
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float16, shape=x.shape)
    mm[:] = x
    batch = DenseInputs(mm).batch(np.array([3, 7, 9]))
    assert batch.dtype == np.float32 or str(batch.dtype) == "torch.float32"
    np.testing.assert_array_equal(batch.numpy(), x[[3, 7, 9]].astype(np.float32))
    with pytest.raises(InputError):
        DenseInputs(np.zeros(5))


def test_chunk_inputs_pad_and_mask():
    vectors = np.arange(12, dtype=np.float16).reshape(6, 2)
    chunks = ChunkInputs(vectors, np.array([0, 1, 4, 6]))
    x, mask = chunks.batch(np.array([0, 1, 2]))
    assert x.shape == (3, 3, 2)
    np.testing.assert_array_equal(mask.numpy(), [[1, 0, 0], [1, 1, 1], [1, 1, 0]])
    np.testing.assert_array_equal(x[1].numpy(), vectors[1:4])
    np.testing.assert_array_equal(x[0, 1:].numpy(), 0)
    with pytest.raises(InputError):
        ChunkInputs(vectors, np.array([0, 0, 6]))  # empty protein


def test_as_inputs_dispatch_and_subset():
    x, _ = tiny_data()
    assert isinstance(as_inputs(x), DenseInputs)
    assert isinstance(as_inputs(tiny_chunks(x)), ChunkInputs)
    _, alphabet = tiny_esm()
    seqs = as_inputs(["MKV", "AC"], alphabet, 2)
    assert isinstance(seqs, SequenceInputs)
    tokens = seqs.batch(np.array([0, 1]))
    assert tokens.shape == (2, 4)  # BOS + 2 residues (truncated) + EOS
    with pytest.raises(InputError):
        as_inputs(["MKV"])
    sub = SubsetInputs(as_inputs(x), np.array([5, 9, 11]))
    np.testing.assert_array_equal(sub.batch(np.array([0, 2])).numpy(), x[[5, 11]].astype(np.float32))


def test_split_is_seeded_and_disjoint():
    tr, va = train_val_split(100, 0.2, seed=1)
    assert len(va) == 20 and len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 100
    tr2, va2 = train_val_split(100, 0.2, seed=1)
    np.testing.assert_array_equal(va, va2)
    assert not np.array_equal(va, train_val_split(100, 0.2, seed=2)[1])


def test_grouped_split_keeps_groups_together():
    groups = np.repeat(np.arange(20), 5)
    tr, va = train_val_split(100, 0.25, seed=0, groups=groups)
    assert set(groups[tr]).isdisjoint(groups[va])
    assert len(va) == 25  # 5 of 20 groups, 5 proteins each
    with pytest.raises(InputError):
        train_val_split(100, 0.25, seed=0, groups=groups[:10])


def test_sequence_groups_identical_sequences():
    g = sequence_groups(["MKV", "AAA", "MKV", "MK"])
    assert g[0] == g[2] and len({g[0], g[1], g[3]}) == 3
