"""Fixtures shared by several test modules (pytest finds them here by name)."""

import pytest
from train_fixtures import world  # noqa: F401  (the tiny prepared world with its own tracking store)


@pytest.fixture(autouse=True)
def _no_experiment_from_an_earlier_test(monkeypatch):
    """mlflow.set_experiment exports MLFLOW_EXPERIMENT_ID, which tracking.configure trusts: a test that
    set up a store must not send the next test's runs to an experiment id its own store lacks."""
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
