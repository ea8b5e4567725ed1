"""Console: quiet loggers, warnings once, the step table, progress lines when stderr is not a terminal."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from cafa_mlflow.console import (
    OnceFilter,
    configure_logging,
    final_message,
    format_seconds,
    format_step_table,
    progress_bar,
)


@pytest.fixture
def restore_logging():
    """configure_logging changes process-wide state: put it back for the other tests."""
    names = ["", "mlflow", "alembic", "mlflow.tracking._model_registry"]
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    for logger in (logging.getLogger(), logging.getLogger("mlflow")):
        for handler in logger.handlers:
            for f in [f for f in handler.filters if isinstance(f, OnceFilter)]:
                handler.removeFilter(f)
    logging.captureWarnings(False)


def test_configure_logging_quiets_mlflow_keeps_registry_and_is_idempotent(restore_logging):
    console, capture = logging.StreamHandler(sys.stderr), logging.StreamHandler(io.StringIO())
    for handler in (console, capture):
        logging.getLogger().addHandler(handler)
    try:
        configure_logging()
        configure_logging()
    finally:
        for handler in (console, capture):
            logging.getLogger().removeHandler(handler)
    assert logging.getLogger("mlflow.system_metrics.system_metrics_monitor").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("alembic.runtime.migration").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("mlflow.tracking._model_registry.fluent").getEffectiveLevel() == logging.INFO
    assert logging.getLogger("cafa_mlflow.data.prepared").isEnabledFor(logging.INFO)
    assert [type(f) for f in console.filters] == [OnceFilter]  # once, though configured twice
    assert capture.filters == []  # a log file or a test's capture sees every record


def test_a_warning_is_shown_once_per_logger_and_text():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(OnceFilter())
    log = logging.getLogger("test_console.once")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    try:
        for _ in range(3):
            log.warning("dropped %d obsolete terms", 4)
            log.info("progress")
        log.warning("dropped %d obsolete terms", 5)
    finally:
        log.removeHandler(handler)
    assert stream.getvalue().splitlines() == [
        "dropped 4 obsolete terms",
        "progress",
        "progress",
        "progress",
        "dropped 5 obsolete terms",
    ]


def test_step_table_and_final_message():
    rows = [
        {"step": "prepare", "seconds": 3.21},
        {"step": "train", "seconds": 125.0, "metric": "val_f_w_mean", "value": 0.41234},
        {"step": "ensemble", "seconds": 3700.0, "metric": "val_f_w_mean", "value": 0.5},
        {"step": "predict", "seconds": 1.0, "metric": "submission_lines", "value": 4385034.0},
    ]
    assert format_step_table(rows).splitlines() == [
        "step       wall time  key metric",
        "-" * 50,
        "prepare        3.2 s",
        "train     2 min 05 s  val_f_w_mean = 0.412",
        "ensemble  1 h 01 min  val_f_w_mean = 0.500",
        "predict        1.0 s  submission_lines = 4,385,034",
        "-" * 50,
        "total     1 h 03 min",
    ]
    from cafa_mlflow.tracking.run_meta import ui_url

    text = final_message(rows, "outputs/submission.tsv", ui_url("7"))
    assert "Submission: outputs/submission.tsv\nRuns: `make ui`" in text
    assert "http://127.0.0.1:5000/#/experiments/7?workflowType=machine_learning" in text  # the runs table
    assert format_seconds(59.96) == "60.0 s" and format_seconds(60) == "1 min 00 s"


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_prints_whole_lines_at_most_every_interval_when_not_a_terminal():
    stream = _Stream(tty=False)
    bar = progress_bar(total=400, desc="embed", stream=stream, interval_s=3600)
    for _ in range(400):
        bar.update(1)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert len(lines) == 2  # the opening line, then the closing one: no update within the interval
    assert lines[0].startswith("embed:   0%") and lines[1].startswith("embed: 100%") and "400/400" in lines[1]


def test_progress_on_a_terminal_redraws_in_place():
    stream = _Stream(tty=True)
    bar = progress_bar(total=3, desc="embed", stream=stream, mininterval=0, dynamic_ncols=True)
    for _ in range(3):
        bar.update(1)
    bar.close()
    assert stream.getvalue().count("\r") >= 4


def test_a_step_failing_before_its_run_names_the_launchers_run_and_records_why(tmp_path, monkeypatch):
    """Offline without weights, `main` fails before opening its run: the `mlflow run` launcher's run gets
    a name and the one-line reason instead of staying empty and nameless."""
    import mlflow

    from cafa_mlflow.console import run_entry
    from cafa_mlflow.errors import MissingWeightsError

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    launcher_run = client.create_run(client.create_experiment("launch")).info.run_id
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_RUN_ID", launcher_run)

    def main(argv):
        raise MissingWeightsError("esm2_t6_8M_UR50D.pt: not in the hub cache; offline: make main ESM=tiny")

    assert run_entry(main, []) == 2
    tags = client.get_run(launcher_run).data.tags
    assert tags["error"].startswith("MissingWeightsError: esm2_t6_8M_UR50D.pt") and tags["mlflow.runName"].endswith(
        "(failed)"
    )
