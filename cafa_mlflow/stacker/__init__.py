"""Learned stacker over member predictions: candidate pair features and the boosted-tree model."""

from cafa_mlflow.stacker.features import Pairs, TermInfo, pair_features, term_info
from cafa_mlflow.stacker.model import Stacker

__all__ = ["Pairs", "Stacker", "TermInfo", "pair_features", "term_info"]
