"""`cafa explain --fasta F --protein ACC [--term GO:...]`: why the registered model (or any model URI) predicts
what it predicts for one protein: per term the final score, each member's score, the training proteins that
carried the term (DIAMOND identity, e-value and bitscore; embedding similarity), the naive prior, and the child
a GO-consistent parent took its score from. The model embeds the sequence itself (its own encoder settings)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from cafa_mlflow.errors import InputError


def explain(model: Any, protein: str, sequence: str, terms: list[str] | None = None, top: int = 3) -> pd.DataFrame:
    """The model's rows for one protein (protein, term, score, evidence), only `terms` when given."""
    frame = pd.DataFrame({"protein": [protein], "sequence": [sequence]})
    out = model.predict(frame, params={"evidence": True, "top": int(top)})
    if terms:
        unknown = [t for t in terms if t not in set(out["term"])]
        if unknown:
            raise InputError(
                f"the model predicts no {unknown[0]} for {protein} (score below the submission minimum, or a term "
                "no training protein carried); run without --term to see what it predicts."
            )
        out = out[out["term"].isin(terms)]
    return out.reset_index(drop=True)
