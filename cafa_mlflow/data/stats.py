"""Dataset analysis (`cafa stats`): proteins, terms, annotations and labels per aspect, label-frequency
buckets, top terms and sequence-length percentiles, as tables, flat values (for a JSON file) and matplotlib
figures. In an MLflow run they are artifacts (tables and plots under `stats/`), never metrics: hundreds of
statistics would bury the runs table's columns (see tracking/metric_names.py).

Labels are the annotations propagated to all ancestors (is_a + part_of within a namespace) over the
proteins of the FASTA file; annotations of proteins without a sequence are counted and left out.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cafa_mlflow.go.annotations import resolve_terms
from cafa_mlflow.go.labels import label_matrix
from cafa_mlflow.go.ontology import Ontology, load_obo
from cafa_mlflow.io.fasta import no_records_error, read_fasta
from cafa_mlflow.io.terms import read_terms

log = logging.getLogger(__name__)
LENGTH_PERCENTILES = (25, 50, 75, 90, 95, 99)
MAX_RESIDUES = 1022  # ESM-2's longest input without BOS/EOS
FREQ_BUCKETS = ((1, 5), (6, 10), (11, 50), (51, 500), (501, None))  # proteins per term; None = no upper bound
TOP_TERMS = 5  # most frequent non-root terms listed per aspect


def bucket_name(low: int, high: int | None) -> str:
    return f">{low - 1}" if high is None else f"{low}-{high}"


@dataclass
class DatasetStats:
    """Tables of one dataset; `term_count` (proteins per live term, propagated) feeds the histograms."""

    n_proteins: int  # sequences in the FASTA file
    n_annotated: int  # of those, proteins with at least one (resolved) annotation
    n_without_sequence: int  # annotated proteins missing from the FASTA file (left out)
    per_aspect: pd.DataFrame  # index aspect + 'all': proteins, terms, annotations, labels, labels_mean/median/max
    buckets: pd.DataFrame  # index aspect + 'all', one column per FREQ_BUCKETS bucket: number of terms
    top_terms: pd.DataFrame  # aspect, term, name, proteins, share
    lengths: np.ndarray  # residues per FASTA protein
    length_percentiles: dict[int, float]
    share_over_max: float  # share of proteins longer than MAX_RESIDUES
    term_count: pd.DataFrame  # term, aspect, proteins (terms carried by >= 1 protein)


def compute_stats(
    ids: list[str], lengths: np.ndarray, annotations: pd.DataFrame, ontology: Ontology, top_n: int = TOP_TERMS
) -> DatasetStats:
    """Statistics of proteins `ids` (sequence `lengths`) and resolved `annotations` (protein, term)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    in_fasta = annotations["protein"].isin(set(ids))
    n_without = int(annotations.loc[~in_fasta, "protein"].nunique())
    annotations = annotations[in_fasta].drop_duplicates(["protein", "term"])
    with_terms = set(annotations["protein"])
    annotated = [p for p in ids if p in with_terms]
    labels = label_matrix(annotations, ontology, annotated).matrix.tocsc()
    counts = np.diff(labels.indptr)  # proteins per term (propagated)
    labels = labels.tocsr()
    raw_aspect = ontology.aspect[pd.Index(ontology.terms).get_indexer(annotations["term"])]
    rows = {}
    bucket_rows = {}
    for aspect in [*ontology.aspects, "all"]:
        cols = np.ones(len(ontology), bool) if aspect == "all" else ontology.aspect == aspect
        per_protein = (
            np.asarray(labels[:, np.flatnonzero(cols)].sum(axis=1)).ravel() if labels.shape[0] else np.zeros(0)
        )
        per_protein = per_protein[per_protein > 0]
        rows[aspect] = {
            "proteins": len(per_protein),
            "terms": int((counts[cols] > 0).sum()),
            "annotations": int(len(annotations) if aspect == "all" else (raw_aspect == aspect).sum()),
            "labels": int(per_protein.sum()),
            "labels_mean": float(per_protein.mean()) if len(per_protein) else 0.0,
            "labels_median": float(np.median(per_protein)) if len(per_protein) else 0.0,
            "labels_max": int(per_protein.max()) if len(per_protein) else 0,
        }
        c = counts[cols]
        bucket_rows[aspect] = {
            bucket_name(lo, hi): int(((c >= lo) & ((c <= hi) if hi else True)).sum()) for lo, hi in FREQ_BUCKETS
        }
    live = np.flatnonzero(counts > 0)
    term_count = pd.DataFrame(
        {
            "term": np.asarray(ontology.terms, dtype=object)[live],
            "aspect": ontology.aspect[live],
            "proteins": counts[live],
        }
    )
    return DatasetStats(
        n_proteins=len(ids),
        n_annotated=len(annotated),
        n_without_sequence=n_without,
        per_aspect=pd.DataFrame.from_dict(rows, orient="index"),
        buckets=pd.DataFrame.from_dict(bucket_rows, orient="index"),
        top_terms=_top_terms(term_count, ontology, len(annotated), top_n),
        lengths=lengths,
        length_percentiles={p: float(v) for p, v in zip(LENGTH_PERCENTILES, np.percentile(lengths, LENGTH_PERCENTILES))}
        if len(lengths)
        else {p: 0.0 for p in LENGTH_PERCENTILES},
        share_over_max=float((lengths > MAX_RESIDUES).mean()) if len(lengths) else 0.0,
        term_count=term_count,
    )


def _top_terms(term_count: pd.DataFrame, ontology: Ontology, n_proteins: int, top_n: int) -> pd.DataFrame:
    roots = {r for a in ontology.aspects for r in ontology.roots(a)}
    table = term_count[~term_count["term"].isin(roots)].sort_values(
        ["proteins", "term"], ascending=[False, True], kind="stable"
    )
    table = table.groupby("aspect", sort=False).head(top_n)
    order = {a: i for i, a in enumerate(ontology.aspects)}
    table = table.sort_values("aspect", key=lambda s: s.map(order), kind="stable")
    names = dict(zip(ontology.terms, ontology.names)) if ontology.names else {}
    table = table.assign(name=table["term"].map(names).fillna(""), share=table["proteins"] / max(n_proteins, 1))
    return table[["aspect", "term", "name", "proteins", "share"]].reset_index(drop=True)


def dataset_stats(
    fasta: str | os.PathLike, terms: str | os.PathLike, obo: str | os.PathLike, top_n: int = TOP_TERMS
) -> DatasetStats:
    """Read the three files (plain, .gz or .xz) and compute their statistics."""
    ontology = load_obo(obo)
    ids, lengths = [], []
    for record in read_fasta(fasta):
        ids.append(record.id)
        lengths.append(len(record.sequence))
    if not ids:
        raise no_records_error(fasta)
    annotations = resolve_terms(read_terms(terms), ontology, source=str(terms))
    return compute_stats(ids, np.asarray(lengths), annotations, ontology, top_n)


def stats_metrics(stats: DatasetStats) -> dict[str, float]:
    """Flat names for MLflow: n_proteins, terms_BPO, labels_mean_all, freq_1-5_BPO, length_p50, ..."""
    out: dict[str, float] = {
        "n_proteins": stats.n_proteins,
        "n_annotated": stats.n_annotated,
        "n_without_sequence": stats.n_without_sequence,
    }
    for aspect, row in stats.per_aspect.iterrows():
        out.update({f"{col}_{aspect}": float(v) for col, v in row.items()})
    for aspect, row in stats.buckets.iterrows():
        out.update({f"freq_{col.replace('>', 'gt')}_{aspect}": float(v) for col, v in row.items()})
    out.update({f"length_p{p}": v for p, v in stats.length_percentiles.items()})
    out[f"share_over_{MAX_RESIDUES}"] = stats.share_over_max
    return {k: float(v) for k, v in out.items()}


def stats_tables(stats: DatasetStats) -> dict[str, pd.DataFrame]:
    """{name: table}: overview, per_aspect, label_frequency, top_terms, sequence_lengths (aspect as a column)."""
    overview = pd.DataFrame(
        [
            {
                "proteins": stats.n_proteins,
                "annotated": stats.n_annotated,
                "annotated_without_sequence": stats.n_without_sequence,
            }
        ]
    )
    lengths = pd.DataFrame(
        [
            {
                **{f"p{p}": v for p, v in stats.length_percentiles.items()},
                f"share_over_{MAX_RESIDUES}": stats.share_over_max,
            }
        ]
    )
    return {
        "overview": overview,
        "per_aspect": stats.per_aspect.rename_axis("aspect").reset_index(),
        "label_frequency": stats.buckets.rename_axis("aspect").reset_index(),
        "top_terms": stats.top_terms,
        "sequence_lengths": lengths,
    }


def format_stats(stats: DatasetStats) -> str:
    """The tables as text."""
    per_aspect = stats.per_aspect.copy()
    per_aspect[["labels_mean", "labels_median"]] = per_aspect[["labels_mean", "labels_median"]].round(1)
    top = stats.top_terms.assign(
        share=stats.top_terms["share"].map("{:.1%}".format), name=stats.top_terms["name"].str.slice(0, 50)
    )
    lengths = pd.DataFrame(
        [
            {
                **{f"p{p}": int(round(v)) for p, v in stats.length_percentiles.items()},
                f"> {MAX_RESIDUES}": f"{stats.share_over_max:.1%}",
            }
        ],
        index=["residues"],
    )
    parts = [
        f"proteins: {stats.n_proteins} sequences, {stats.n_annotated} annotated"
        + (
            f" ({stats.n_without_sequence} annotated proteins not in the FASTA file left out)"
            if stats.n_without_sequence
            else ""
        ),
        "",
        "per aspect (annotations = file rows, labels = propagated; labels per protein over annotated proteins):",
        per_aspect.to_string(),
        "",
        "label frequency (terms by number of proteins carrying them, propagated):",
        stats.buckets.to_string(),
        "",
        "top terms per aspect (roots left out):",
        top.to_string(index=False) if len(top) else "(none)",
        "",
        "sequence length percentiles:",
        lengths.to_string(),
    ]
    return "\n".join(parts)


def print_stats(stats: DatasetStats) -> None:
    print(format_stats(stats))


def stats_figures(stats: DatasetStats) -> dict[str, object]:
    """{file name: matplotlib Figure}: sequence-length and label-frequency histograms (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = {}
    fig, ax = plt.subplots(figsize=(7, 4))
    if len(stats.lengths):
        bins = np.logspace(np.log10(max(stats.lengths.min(), 1)), np.log10(stats.lengths.max() + 1), 60)
        ax.hist(stats.lengths, bins=bins, color="tab:blue")
        ax.set_xscale("log")
    ax.axvline(
        MAX_RESIDUES,
        color="tab:red",
        linestyle="--",
        label=f"{MAX_RESIDUES} residues ({stats.share_over_max:.1%} longer)",
    )
    ax.set(xlabel="sequence length (residues)", ylabel="proteins", title="Sequence lengths")
    ax.legend()
    fig.tight_layout()
    figures["sequence_lengths.png"] = fig

    fig, ax = plt.subplots(figsize=(7, 4))
    counts = stats.term_count
    if len(counts):
        # integer-aligned log bins: without them the small counts 1, 2, 3 fall into empty gaps
        edges = np.unique(np.round(np.logspace(0, np.log10(counts["proteins"].max()), 40)))
        bins = np.append(edges, edges[-1] + 1) - 0.5
        for aspect, group in counts.groupby("aspect", sort=True):
            ax.hist(group["proteins"], bins=bins, histtype="step", linewidth=1.5, label=str(aspect))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend()
    ax.set(xlabel="proteins carrying the term (propagated)", ylabel="terms", title="Label frequency")
    fig.tight_layout()
    figures["label_frequency.png"] = fig
    return figures


def plot_stats(stats: DatasetStats, out_dir: str | os.PathLike) -> list[Path]:
    """Write the figures as PNG files into `out_dir`; return their paths."""
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in stats_figures(stats).items():
        fig.savefig(out_dir / name, dpi=100)
        plt.close(fig)
        paths.append(out_dir / name)
    return paths
