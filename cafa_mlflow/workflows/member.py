"""Fit one member: on the prepared `train` split (scores `val`), cross-fitted over the train split's folds
(`oof`, what the ensemble learns from), and on the whole pool for `test` and the saved model (folds.full_fit)."""

from __future__ import annotations

from typing import Any

from cafa_mlflow.evaluation.scorer import flat_metrics
from cafa_mlflow.go.ontology import load_obo
from cafa_mlflow.io.text import check_writable
from cafa_mlflow.predictors import registry
from cafa_mlflow.run_meta import log_prepared_splits
from cafa_mlflow.workflows.common import (
    OOF,
    SPLITS,
    cross_fitted,
    ensure_prepared,
    final_fit,
    member_folder,
    protein_set,
    split_scorer,
    training_set,
    write_member,
)


def fit_member(kind: str, params: Any) -> dict[str, float]:
    """Fit, predict, evaluate and save member `kind` under <outputs.predictions>/<kind>; returns metrics."""
    check_writable(member_folder(params, kind), folder=True)
    if kind == "reference":
        from cafa_mlflow.workflows.chain import reference_skipped

        if why := reference_skipped(params):  # DVC's stage still needs its folder: a note in it, no predictions
            print(f"notice: the reference member is skipped ({why}).")
            member_folder(params, kind).mkdir(parents=True, exist_ok=True)
            (member_folder(params, kind) / "SKIPPED").write_text(f"{why}\n")
            return {}
    prepared = ensure_prepared(params)
    log_prepared_splits(prepared)
    ontology = load_obo(params.data.obo)

    def make() -> Any:
        return registry.build(kind, params, ontology)

    predictor = make()
    predictor.fit(training_set(predictor, params, prepared, "train"))
    predictions = {"val": predictor.predict(protein_set(predictor, params, prepared, "val"))}
    oof = cross_fitted(make, params, prepared, predictor)
    if oof is not None:
        predictions[OOF] = oof
    predictor = final_fit(make, params, prepared, predictor)
    if prepared.test_fasta.exists():
        predictions["test"] = predictor.predict(protein_set(predictor, params, prepared, "test"))
    metrics = {}
    for split in (s for s in SPLITS if s in predictions):  # val, and test when there is one; never oof
        scorer = split_scorer(prepared, ontology, split, params.evaluate.threshold_step)
        if scorer is not None:
            metrics.update(flat_metrics(scorer(predictions[split]), f"{split}_"))
    write_member(member_folder(params, kind), predictor, predictions, metrics)
    return metrics
