"""Neural GO-term classifiers over protein embeddings (or ESM-2 fine-tuned end to end), plain PyTorch."""

from cafa_mlflow.config.train_params import TrainParams
from cafa_mlflow.predictors.neural.data import (
    ChunkInputs,
    DenseInputs,
    SequenceInputs,
    SubsetInputs,
    as_inputs,
    label_batch,
    sequence_groups,
    train_val_split,
)
from cafa_mlflow.predictors.neural.losses import MultiLabelLoss, build_loss, pos_weights
from cafa_mlflow.predictors.neural.models import (
    ChunkAttention,
    FinetuneClassifier,
    MultitaskMLP,
    SimpleMLP,
    build_model,
)
from cafa_mlflow.predictors.neural.predictor import NeuralPredictor
from cafa_mlflow.predictors.neural.scoring import iter_scores, predict_scores
from cafa_mlflow.predictors.neural.thresholds import Thresholds, choose_aspect_thresholds, choose_thresholds
from cafa_mlflow.predictors.neural.training import (
    PruningCallback,
    TrainingPruned,
    TrainResult,
    fit_model,
    seed_everything,
)

__all__ = [
    "ChunkAttention",
    "ChunkInputs",
    "DenseInputs",
    "FinetuneClassifier",
    "MultiLabelLoss",
    "MultitaskMLP",
    "NeuralPredictor",
    "PruningCallback",
    "SequenceInputs",
    "SimpleMLP",
    "SubsetInputs",
    "Thresholds",
    "TrainParams",
    "TrainResult",
    "TrainingPruned",
    "as_inputs",
    "build_loss",
    "build_model",
    "choose_aspect_thresholds",
    "choose_thresholds",
    "fit_model",
    "iter_scores",
    "label_batch",
    "pos_weights",
    "predict_scores",
    "seed_everything",
    "sequence_groups",
    "train_val_split",
]
