"""Text and markdown tables of evaluator results (the dicts of `cafa_mlflow.evaluation.scorer`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TABLE_COLUMNS = ("n", "f", "f_w", "tau", "tau_w", "pr", "rc", "cov", "s")


def aspects_of(result: Mapping) -> list[str]:
    return [key for key, value in result.items() if isinstance(value, Mapping)]


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def format_table(result: Mapping, columns: tuple[str, ...] = TABLE_COLUMNS) -> str:
    """Plain-text table: one row per aspect, then the means."""
    rows = [("aspect", *columns)]
    rows += [
        (aspect, *(_fmt(result[aspect].get(c), 0 if c == "n" else 3) for c in columns)) for aspect in aspects_of(result)
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.append(f"mean F-max {_fmt(result.get('mean_f'))}   mean weighted F-max {_fmt(result.get('mean_f_w'))}")
    return "\n".join(lines)


def markdown_summary(results: Mapping[str, Mapping], key: str = "f_w") -> str:
    """Markdown table: rows = predictors, columns = `key` per aspect and its mean."""
    aspects = list(dict.fromkeys(a for r in results.values() for a in aspects_of(r)))
    lines = [
        f"| predictor | {' | '.join(f'{a} {key}' for a in aspects)} | mean {key} |",
        "|---" * (len(aspects) + 2) + "|",
    ]
    for name, result in results.items():
        cells = [_fmt(result.get(a, {}).get(key)) for a in aspects]
        lines.append(f"| {name} | {' | '.join(cells)} | {_fmt(result.get(f'mean_{key}'))} |")
    return "\n".join(lines) + "\n"


def table_path(out_json: str | Path) -> Path:
    """The markdown table `evaluate` writes beside its JSON: <stem>_table.md."""
    out_json = Path(out_json)
    return out_json.with_name(f"{out_json.stem}_table.md")
