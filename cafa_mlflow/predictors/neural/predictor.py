"""NeuralPredictor: fit / predict / save / load around one classifier (plain torch, no MLflow).

Saved directory: model.pt (torch state dict), config.json (params, terms, aspects, dims, ESM architecture),
thresholds.json (if chosen). The pipeline wraps it in an mlflow.pyfunc model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from cafa_mlflow.config.train_params import TrainParams
from cafa_mlflow.errors import ConfigError, InputError, MissingWeightsError, NotFittedError
from cafa_mlflow.go.labels import TermMatrix
from cafa_mlflow.io.readback import read_json
from cafa_mlflow.io.text import atomic_write
from cafa_mlflow.predictors.base import CHUNKS, EMBEDDING, SEQUENCE, Predictor, ProteinSet, TrainSet
from cafa_mlflow.predictors.neural.data import (
    ChunkInputs,
    Inputs,
    SequenceInputs,
    SubsetInputs,
    as_inputs,
    sequence_groups,
    train_val_split,
)
from cafa_mlflow.predictors.neural.losses import build_loss
from cafa_mlflow.predictors.neural.models import ChunkAttention, FinetuneClassifier, build_model, prior_logits
from cafa_mlflow.predictors.neural.scoring import predict_scores
from cafa_mlflow.predictors.neural.thresholds import Thresholds, choose_thresholds
from cafa_mlflow.predictors.neural.training import TrainResult, ValMetric, fit_model, seed_everything

if TYPE_CHECKING:
    from cafa_mlflow.go.ontology import Ontology

FORMAT_VERSION = 1


def _in_dim(inputs: Inputs) -> int | None:
    base = inputs.base if isinstance(inputs, SubsetInputs) else inputs
    if isinstance(base, SequenceInputs):
        return None
    return int((base.x if hasattr(base, "x") else base.vectors).shape[1])


# Training settings added after models were first saved, at the value those models were trained with (a loaded
# model predicts the same whatever they say; they matter only if it is refitted).
SAVED_BEFORE = {"fused_optimizer": False}


class NeuralPredictor(Predictor):
    """One neural GO-term classifier over a fixed term vocabulary."""

    kind = "neural"
    label_terms = "vocabulary"

    def __init__(self, params: TrainParams | dict, esm: tuple[nn.Module, Any] | None = None) -> None:
        """esm: (ESM-2 model, alphabet) that model=finetune fits on when fit() is given none (e.g. cross-fitting)."""
        self.params = params if isinstance(params, TrainParams) else TrainParams.from_dict(params)
        self.esm = esm
        self.model: nn.Module | None = None
        self.terms: list[str] = []
        self.term_aspect = np.array([], dtype=str)
        self.in_dim: int | None = None
        self.thresholds: Thresholds | None = None
        self.result: TrainResult | None = None

    @classmethod
    def from_params(cls, block: TrainParams, ontology: Ontology) -> NeuralPredictor:
        return cls(block)

    def inputs(self) -> set[str]:
        return {"finetune": {SEQUENCE}, "chunk_attention": {CHUNKS}}.get(self.params.model, {EMBEDDING})

    def embedding_dim(self) -> int | None:
        return self.in_dim

    def _x(self, proteins: ProteinSet) -> Any:
        """The model input of a ProteinSet: sequences, chunk inputs or pooled vectors."""
        needs = self.inputs()
        if CHUNKS in needs and proteins.chunks is None and proteins.embeddings is not None:
            return np.asarray(proteins.embeddings, dtype=np.float32)  # served: one pooled vector = one chunk
        proteins.require(needs, self.kind)
        if SEQUENCE in needs:
            return list(proteins.sequences)
        return proteins.chunks if CHUNKS in needs else proteins.embeddings

    def fit(
        self,
        train: TrainSet,
        val: TrainSet | None = None,
        *,
        val_metric: ValMetric | None = None,
        callbacks: Sequence[Any] = (),
        esm_model: nn.Module | None = None,
        alphabet: Any = None,
    ) -> NeuralPredictor:
        """Fit on a TrainSet (validation: `val`, else a split of `train` by params); result in `self.result`."""
        if esm_model is None and self.esm is not None:
            esm_model, alphabet = self.esm
        if train.term_aspect is None:
            raise InputError("a neural predictor needs TrainSet.term_aspect (the aspect of each label column).")
        self.fit_arrays(
            self._x(train),
            train.labels.matrix,
            train.term_aspect,
            None if val is None else (self._x(val), val.labels.reindex(terms=train.labels.terms).matrix),
            terms=train.labels.terms,
            val_metric=val_metric,
            callbacks=callbacks,
            esm_model=esm_model,
            alphabet=alphabet,
        )
        return self

    def predict(self, proteins: ProteinSet) -> TermMatrix:
        return TermMatrix(proteins.ids, self.terms, self.predict_arrays(self._x(proteins)))

    def _inputs(self, x: Any) -> Inputs:
        if isinstance(self.model, FinetuneClassifier):
            return as_inputs(x, self.model.alphabet, self.model.max_residues)
        if isinstance(self.model, ChunkAttention) and len(getattr(x, "shape", ())) == 2:
            # a pooled vector per protein (e.g. the serving input): one chunk each
            return ChunkInputs(x, np.arange(x.shape[0] + 1))
        return as_inputs(x)

    def fit_arrays(
        self,
        X: Any,
        Y: sp.csr_matrix,
        term_aspect: np.ndarray,
        val: tuple[Any, sp.csr_matrix] | None = None,
        *,
        terms: Sequence[str] | None = None,
        groups: np.ndarray | None = None,
        val_metric: ValMetric | None = None,
        callbacks: Sequence[Any] = (),
        esm_model: nn.Module | None = None,
        alphabet: Any = None,
    ) -> TrainResult:
        """Train on (X, Y); validate on `val`, or on a split of X by params.val_fraction / val_seed
        (grouped by `groups`, or by identical sequence when val_group_by='sequence' and X is sequences).
        Thresholds are then chosen on the validation set only."""
        p = self.params
        Y = sp.csr_matrix(Y, dtype=np.float32)
        self.term_aspect = np.asarray(term_aspect).astype(str)
        if Y.shape[1] != len(self.term_aspect):
            raise InputError(f"labels have {Y.shape[1]} term columns but term_aspect has {len(self.term_aspect)}")
        self.terms = list(terms) if terms is not None else [str(i) for i in range(Y.shape[1])]
        seed_everything(p.seed)
        inputs = as_inputs(X, alphabet, p.finetune_max_residues)
        if len(inputs) != Y.shape[0]:
            raise InputError(f"{len(inputs)} inputs but {Y.shape[0]} label rows; they must match row for row")
        if val is None:
            train_idx, val_idx = train_val_split(len(inputs), p.val_fraction, p.val_seed, self._groups(inputs, groups))
            train_in, y_train = SubsetInputs(inputs, train_idx), Y[train_idx]
            val_in, y_val = SubsetInputs(inputs, val_idx), Y[val_idx]
        else:
            train_in, y_train = inputs, Y
            val_in, y_val = (
                as_inputs(val[0], alphabet, p.finetune_max_residues),
                sp.csr_matrix(val[1], dtype=np.float32),
            )
        self.in_dim = _in_dim(inputs)
        self.model = build_model(p, self.in_dim, self.term_aspect, esm_model, alphabet)
        self.model.set_output_bias(prior_logits(y_train))  # first-epoch scores stay sparse
        loss_fn = build_loss(p, y_train, self.term_aspect)
        self.result = fit_model(self.model, loss_fn, train_in, y_train, val_in, y_val, p, val_metric, callbacks)
        val_scores = predict_scores(self.model, val_in, p.inference_batch_size, p.min_score)
        self.thresholds = choose_thresholds(
            val_scores, y_val, self.term_aspect, p.threshold_step, p.threshold_per_term, p.threshold_min_support
        )
        return self.result

    def _groups(self, inputs: Inputs, groups: np.ndarray | None) -> np.ndarray | None:
        mode = self.params.val_group_by
        if mode == "none":
            return None
        if groups is not None:
            return groups
        if mode == "sequence" and isinstance(inputs, SequenceInputs):
            return sequence_groups(inputs.sequences)
        raise ConfigError(
            f"params.yaml train.val_group_by={mode!r} needs groups: pass groups= (e.g. "
            "data.sequence_groups(sequences) or DIAMOND clusters) or set val_group_by: none"
        )

    def predict_arrays(self, X: Any, apply_thresholds: bool = False) -> sp.csr_matrix:
        """N x T CSR scores >= params.min_score (top_k per protein if set); optionally thresholded."""
        if self.model is None:
            raise NotFittedError("NeuralPredictor.predict")
        p = self.params
        scores = predict_scores(self.model, self._inputs(X), p.inference_batch_size, p.min_score, p.top_k)
        return self.thresholds.apply(scores) if apply_thresholds and self.thresholds is not None else scores

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def config(self) -> dict[str, Any]:
        esm = self.model.esm_config() if isinstance(self.model, FinetuneClassifier) else None
        return {
            "format_version": FORMAT_VERSION,
            "params": self.params.to_dict(),
            "terms": self.terms,
            "term_aspect": self.term_aspect.tolist(),
            "in_dim": self.in_dim,
            "esm": esm,
        }

    def save_files(self, directory: Path) -> None:
        """Write model.pt, config.json and thresholds.json (each via temp file + os.replace)."""
        d = Path(directory)
        with atomic_write(d / "model.pt", "wb") as handle:
            torch.save(self.state_dict(), handle)
        with atomic_write(d / "config.json") as handle:
            handle.write(json.dumps(self.config()))
        if self.thresholds is not None:
            with atomic_write(d / "thresholds.json") as handle:
                handle.write(self.thresholds.to_json())

    @classmethod
    def load_files(cls, directory: Path) -> NeuralPredictor:
        d = Path(directory)
        if not (d / "model.pt").is_file() or not (d / "config.json").is_file():
            raise MissingWeightsError(f"{d}: no model.pt/config.json; train and save a neural model there first")
        cfg = read_json(d / "config.json")
        self = cls({**SAVED_BEFORE, **cfg["params"]})
        self.terms, self.term_aspect, self.in_dim = cfg["terms"], np.asarray(cfg["term_aspect"]), cfg["in_dim"]
        esm_model = alphabet = None
        if cfg["esm"] is not None:
            import esm  # fair-esm, only for fine-tuned models

            alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
            esm_model = esm.model.esm2.ESM2(alphabet=alphabet, **cfg["esm"])
        self.model = build_model(self.params, self.in_dim, self.term_aspect, esm_model, alphabet)
        self.model.load_state_dict(torch.load(d / "model.pt", map_location="cpu", weights_only=True))
        self.model.eval()
        if (d / "thresholds.json").is_file():
            self.thresholds = Thresholds.from_dict(read_json(d / "thresholds.json"))
        return self
