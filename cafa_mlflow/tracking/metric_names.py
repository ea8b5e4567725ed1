"""The metric names runs may log: a few families shared by every entry point, so the runs table stays small and
a column means the same thing in every run. Tables (dataset statistics, thresholds) go to artifacts instead.

Families (ASPECT = BPO | CCO | MFO | mean; MEMBER = a predictor name such as naive, knn, neural, ensemble):
  cafa        <split>_<measure>_<ASPECT>              val_f_w_BPO, test_s_MFO, val_f_w_mean: the run's own model;
              measure is one of HEADLINE_MEASURES (F-max, weighted F-max, S-min, coverage); the other columns of
              the evaluator's result (thresholds, precision, recall, micro F ...) go to JSON/markdown artifacts
              <split>_<MEMBER>_<f_w|f>_mean             val_knn_f_w_mean, test_ensemble_f_mean: other predictions
              scored in the run (ensemble, evaluate), means only: their per-aspect values are in their own runs
  f1          <split>_(micro|macro)_f1_<ASPECT>       F1 of the thresholded predictions
  epoch       train_loss, val_loss, lr, log_var_<ASPECT> (per-epoch, step = epoch)
  training    best_epoch, epochs_run
  counts      n_<what>                                n_train, n_val, n_terms_BPO, n_test_annotations
  timing      [<role>_]<measure>                      seconds, seconds_train, train_residues_per_s, peak_rss_mb
  submission  submission_<what>                       submission_lines, submission_proteins, submission_bytes
  tune        best_<metric>, best_trial, trials_<what>
  system      system/<what>                           MLflow's system metrics (CPU, memory, disk)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from cafa_mlflow.evaluation.curves import RESULT_KEYS

HEADLINE_MEASURES = ("f_w", "f", "s", "cov")  # the evaluator's measures logged as metrics, per aspect
SPLIT = r"(val|test)"
ASPECT = r"([A-Z]{3}|mean)"
MEASURE = "|".join(HEADLINE_MEASURES)
ANY_MEASURE = "|".join((*RESULT_KEYS, "n"))
MEMBER = rf"(?!(?:{ANY_MEASURE})_)[a-z0-9]+_"  # a member name is never a measure (val_tau_f_mean is no member)
TIMING = r"seconds|residues_per_s|proteins_per_s|peak_rss_mb|max_length|world_size|dim|layer|share_over_\d+"
FAMILIES: dict[str, str] = {
    "cafa": rf"{SPLIT}_({MEASURE})_{ASPECT}|{SPLIT}_{MEMBER}(f_w|f)_mean",
    "f1": rf"{SPLIT}_(micro|macro)_f1_{ASPECT}",
    "epoch": rf"train_loss|val_loss|lr|log_var_{ASPECT}",
    "training": r"best_epoch|epochs_run",
    "counts": r"([a-z]+_)?n_[a-z]\w*",
    "timing": rf"([a-z]+_)?({TIMING})(_[a-z]+)?",
    "submission": r"submission_[a-z_]+",
    "tune": r"best_[a-z0-9_]+|best_trial|trials_[a-z_]+",
    "system": r"system/.+",
}
_PATTERNS = {name: re.compile(rf"(?:{pattern})") for name, pattern in FAMILIES.items()}


def metric_family(key: str) -> str | None:
    """The family a metric name belongs to, None when it is outside the vocabulary."""
    return next((name for name, pattern in _PATTERNS.items() if pattern.fullmatch(key)), None)


def off_vocabulary(keys: Iterable[str]) -> list[str]:
    """The keys that belong to no family, sorted."""
    return sorted(k for k in set(keys) if metric_family(k) is None)


def column_metrics(flat: Mapping[str, float]) -> dict[str, float]:
    """The CAFA metrics of `flat` (evaluation.scorer.flat_metrics output, any prefix) worth a column:
    HEADLINE_MEASURES per aspect and the means; keys outside the `cafa` family pass through unchanged."""
    measure = re.compile(rf"(.*_)?({ANY_MEASURE})_{ASPECT}")
    return {k: v for k, v in flat.items() if metric_family(k) or not measure.fullmatch(k)}
