"""`cafa stats` on a hand-made dataset with known answers: tables, flat metrics, plots, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cafa_fixtures import forget_mlflow_run

from cafa_mlflow.data.stats import dataset_stats, format_stats, plot_stats, stats_metrics, stats_tables
from cafa_mlflow.errors import InputError
from cafa_mlflow.tracking.runs import log_stats
from pipelines.cli import main as cafa
from tests.cafa_fixtures import OBO, TERMS_TSV, snapshot, write

LENGTHS = {"P1": 10, "P2": 20, "P3": 30, "P4": 40, "P5": 50, "P7": 2000}  # P6 (annotated) has no sequence


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("stats")
    fasta = "".join(f">{p} 9606\n{'M' * n}\n" for p, n in LENGTHS.items())
    return write(root / "s.fasta.xz", fasta), write(root / "terms.tsv", TERMS_TSV), write(root / "go.obo", OBO)


@pytest.fixture(scope="module")
def stats(files):
    return dataset_stats(*files, top_n=2)


def test_tables(stats):
    assert (stats.n_proteins, stats.n_annotated, stats.n_without_sequence) == (6, 5, 1)
    table = stats.per_aspect
    assert table.index.tolist() == ["BPO", "CCO", "MFO", "animal", "all"]
    assert table.loc["BPO"].tolist() == [4, 5, 4, 13, 3.25, 3.0, 5]
    assert table.loc["CCO"].tolist() == [1, 2, 1, 2, 2.0, 2.0, 2]
    assert table.loc["MFO"].tolist() == [0, 0, 0, 0, 0.0, 0.0, 0]
    assert table.loc["all"].tolist() == [5, 7, 5, 15, 3.0, 2.0, 5]
    assert stats.buckets.columns.tolist() == ["1-5", "6-10", "11-50", "51-500", ">500"]
    assert stats.buckets.loc["BPO"].tolist() == [5, 0, 0, 0, 0]
    assert stats.buckets.loc["all"].tolist() == [7, 0, 0, 0, 0]
    assert stats.top_terms[["aspect", "term", "name", "proteins"]].values.tolist() == [
        ["BPO", "GO:0000002", "a", 3],
        ["BPO", "GO:0000003", "b", 3],
        ["CCO", "GO:0000011", "cc child", 1],
    ]
    assert stats.top_terms["share"].tolist() == [0.6, 0.6, 0.2]
    expect = np.percentile(list(LENGTHS.values()), [25, 50, 75, 90, 95, 99])
    assert list(stats.length_percentiles) == [25, 50, 75, 90, 95, 99]
    np.testing.assert_allclose(list(stats.length_percentiles.values()), expect)
    assert stats.length_percentiles[50] == 35.0 and stats.share_over_max == pytest.approx(1 / 6)


def test_flat_metrics_and_text(stats):
    m = stats_metrics(stats)
    assert m["n_proteins"] == 6 and m["annotations_BPO"] == 4 and m["labels_mean_all"] == 3.0
    assert m["freq_1-5_BPO"] == 5 and m["freq_gt500_all"] == 0 and m["length_p50"] == 35.0
    assert m["share_over_1022"] == pytest.approx(1 / 6)
    assert all(isinstance(v, float) for v in m.values())
    text = format_stats(stats)
    assert "6 sequences, 5 annotated (1 annotated proteins not in the FASTA file left out)" in text
    assert "GO:0000002" in text and "16.7%" in text


def test_plots(stats, tmp_path):
    paths = plot_stats(stats, tmp_path / "plots")
    assert [p.name for p in paths] == ["sequence_lengths.png", "label_frequency.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)


def test_cli(files, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    fasta, terms, obo = files
    out = tmp_path / "m.json"
    assert cafa(["stats", "--fasta", str(fasta), "--terms", str(terms), "--obo", str(obo), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "per aspect" in printed and "sequence length percentiles" in printed
    assert json.loads(out.read_text())["labels_BPO"] == 13.0


def test_bad_input_writes_nothing(files, tmp_path, capsys):
    fasta, terms, obo = files
    bad = write(tmp_path / "in" / "bad.fasta", ">A\nMK\n>A\nMK\n")
    out = tmp_path / "out"
    out.mkdir()
    args = [
        "stats",
        "--fasta",
        str(bad),
        "--terms",
        str(terms),
        "--obo",
        str(obo),
        "--json",
        str(out / "m.json"),
        "--plots",
        str(out / "plots"),
    ]
    assert cafa(args) == 2
    assert "bad.fasta:3: duplicate protein id 'A'" in capsys.readouterr().err
    assert snapshot(out) == {}
    with pytest.raises(InputError, match="nope.tsv: file not found"):
        dataset_stats(fasta, tmp_path / "nope.tsv", obo)


def test_tables_for_artifacts(stats):
    tables = stats_tables(stats)
    assert list(tables) == ["overview", "per_aspect", "label_frequency", "top_terms", "sequence_lengths"]
    assert tables["overview"].to_dict("records") == [{"proteins": 6, "annotated": 5, "annotated_without_sequence": 1}]
    assert tables["per_aspect"]["aspect"].tolist() == ["BPO", "CCO", "MFO", "animal", "all"]
    assert tables["per_aspect"].iloc[0].tolist() == ["BPO", 4, 5, 4, 13, 3.25, 3.0, 5]
    assert tables["label_frequency"].columns.tolist() == ["aspect", "1-5", "6-10", "11-50", "51-500", ">500"]
    assert tables["sequence_lengths"]["p50"].tolist() == [35.0]
    assert tables["sequence_lengths"]["share_over_1022"].tolist() == [pytest.approx(1 / 6)]


@pytest.mark.slow
def test_logged_as_artifacts_not_metrics(stats, tmp_path, monkeypatch):
    import mlflow
    from mlflow.tracking import MlflowClient

    forget_mlflow_run(monkeypatch)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_experiment("stats-test")  # not an experiment id another test's store left active
    try:
        with mlflow.start_run() as run:
            paths = log_stats(stats)
        client = MlflowClient()
        assert client.get_run(run.info.run_id).data.metrics == {}
        logged = {a.path for a in client.list_artifacts(run.info.run_id, "stats")}
        assert logged == set(paths) and len(paths) == 8
        table = mlflow.load_table("stats/per_aspect.json", run_ids=[run.info.run_id])
        assert table.set_index("aspect").loc["all", "labels"] == 15
    finally:
        mlflow.set_tracking_uri(None)
