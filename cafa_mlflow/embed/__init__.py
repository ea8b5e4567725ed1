"""ESM-2 protein embeddings: model loading, long-sequence strategies, sharded resumable cache."""

from cafa_mlflow.embed.cache import Embeddings, ShardedArray, load_embeddings
from cafa_mlflow.embed.model import ESM2_LAYERS, fetch_weights, load_esm, make_tiny_esm, model_identity, model_label
from cafa_mlflow.embed.runner import EmbedResult, embed_fasta, matches_settings
from cafa_mlflow.embed.settings import EmbedSettings
from cafa_mlflow.embed.units import POOLINGS, STRATEGIES

__all__ = [
    "ESM2_LAYERS",
    "POOLINGS",
    "STRATEGIES",
    "EmbedResult",
    "EmbedSettings",
    "Embeddings",
    "ShardedArray",
    "embed_fasta",
    "fetch_weights",
    "load_embeddings",
    "load_esm",
    "matches_settings",
    "make_tiny_esm",
    "model_identity",
    "model_label",
]
