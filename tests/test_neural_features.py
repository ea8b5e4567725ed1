import numpy as np
import pytest
from neural_fixtures import ASPECTS, params, tiny_chunks, tiny_data

from cafa_mlflow.embed.cache import ShardedArray
from cafa_mlflow.errors import ConfigError, InputError
from cafa_mlflow.predictors.neural import NeuralPredictor, TrainParams
from cafa_mlflow.predictors.neural.data import ChunkInputs, SubsetInputs
from cafa_mlflow.predictors.neural.features import embedding_inputs, pooled_chunks, sequences_for


class Cache:
    """Stands in for cafa_mlflow.embed.Embeddings (ids, vectors, offsets)."""

    def __init__(self, ids, vectors, offsets=None):
        self.ids, self.vectors, self.offsets = ids, vectors, offsets


def test_dense_inputs_follow_requested_ids_across_shards():
    x = np.arange(20, dtype=np.float16).reshape(10, 2)
    cache = Cache([f"P{i}" for i in range(10)], ShardedArray([x[:4], x[4:]]))
    inputs = embedding_inputs(cache, ["P7", "P1", "P5"], "multitask")
    assert isinstance(inputs, SubsetInputs) and len(inputs) == 3
    np.testing.assert_array_equal(inputs.batch(np.array([0, 1, 2])).numpy(), x[[7, 1, 5]].astype(np.float32))
    with pytest.raises(InputError, match="P99"):
        embedding_inputs(cache, ["P1", "P99"], "simple")


def test_ragged_cache_pooled_for_dense_models_and_chunks_for_attention():
    vectors = np.arange(12, dtype=np.float16).reshape(6, 2)
    offsets = np.array([0, 1, 4, 6])
    cache = Cache(["A", "B", "C"], vectors, offsets)
    np.testing.assert_allclose(pooled_chunks(vectors, offsets), [[0, 1], [4, 5], [9, 10]])
    dense = embedding_inputs(cache, ["C", "A"], "simple")
    np.testing.assert_allclose(dense.batch(np.array([0, 1])).numpy(), [[9, 10], [0, 1]])
    chunks, mask = embedding_inputs(cache, ["B", "C"], "chunk_attention").batch(np.array([0, 1]))
    assert chunks.shape == (2, 3, 2) and mask.sum().item() == 5
    with pytest.raises(ConfigError, match="chunks"):
        embedding_inputs(Cache(["A"], vectors[:1]), ["A"], "chunk_attention")


def test_sequences_for_ids():
    from cafa_mlflow.io.fasta import FastaRecord

    records = [FastaRecord("A", "MKV", None), FastaRecord("B", "GG", None)]
    assert sequences_for(records, ["B", "A"], "x.fasta") == ["GG", "MKV"]
    with pytest.raises(InputError, match="C"):
        sequences_for(records, ["C"], "x.fasta")


def test_numbers_given_as_text_are_coerced():
    p = params(lr="1e-6", batch_size="8", top_k=None)  # YAML reads 1e-6 as a string; flags arrive as text
    assert p.lr == 1e-6 and p.batch_size == 8 and p.top_k is None
    with pytest.raises(ConfigError, match="lr"):
        params(lr="fast")
    assert isinstance(TrainParams.from_dict(p.to_dict()), TrainParams)


def test_predictor_starts_from_term_priors_and_chunk_model_serves_pooled_vectors():
    x, y = tiny_data()
    # lr must be > 0 (train.lr's range); 1e-12 moves no weight measurably in one epoch
    pred = NeuralPredictor(params(model="chunk_attention", max_epochs=1, lr=1e-12, weight_decay=0.0, min_score=0.0))
    pred.fit_arrays(tiny_chunks(x), y, ASPECTS, val=(tiny_chunks(x), y))
    # lr ~ 0: the output biases are still the logits of the training term frequencies
    freq = np.asarray(y.mean(axis=0)).ravel()
    for aspect, head in pred.model.classifier.heads.items():
        cols = np.flatnonzero(ASPECTS == aspect)
        np.testing.assert_allclose(head.bias.detach().numpy(), np.log(freq[cols] / (1 - freq[cols])), rtol=1e-5)
    scores = pred.predict_arrays(x.astype(np.float32))  # one pooled vector per protein = a single chunk
    single = pred.predict_arrays((x.astype(np.float32), np.arange(len(x) + 1)))
    assert scores.shape == y.shape and (scores != single).nnz == 0
    assert isinstance(pred._inputs(x), ChunkInputs)


def test_chunk_model_cross_fits_on_row_views_of_its_chunk_inputs():
    """A fold of a TrainSet with chunk inputs is a view of their rows (views of views stay one level deep)."""
    from cafa_mlflow.go.labels import TermMatrix
    from cafa_mlflow.predictors.base import TrainSet
    from cafa_mlflow.predictors.crossfit import cross_fit

    x, y = tiny_data(n=30)
    chunks = ChunkInputs(*tiny_chunks(x))
    ids = [f"P{i}" for i in range(30)]
    terms = [f"GO:{i:07d}" for i in range(y.shape[1])]
    train = TrainSet(ids, chunks=chunks, labels=TermMatrix(ids, terms, y), term_aspect=ASPECTS)
    part = train.take(np.array([3, 4, 5])).take(np.array([2]))
    assert part.ids == ["P5"] and part.chunks.base is chunks and part.chunks.index.tolist() == [5]
    oof = cross_fit(lambda: NeuralPredictor(params(model="chunk_attention", max_epochs=1)), train, np.arange(30) % 3)
    assert oof.proteins == ids and oof.matrix.shape == (30, len(terms))
