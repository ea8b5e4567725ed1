"""Fixtures shared by several test modules (pytest finds them here by name)."""

import pytest
from train_fixtures import world  # noqa: F401  (the tiny prepared world with its own tracking store)


@pytest.fixture(autouse=True, scope="session")
def _user_cache_in_a_temporary_folder(tmp_path_factory):
    """CAFA_CACHE_DIR (parsed ontologies, the MMseqs2 indexes of loaded models) points at one temporary folder for
    the whole session, commands run as subprocesses included, so that no test writes into the user's cache
    (~/.cache/cafa-mlflow); a test that needs its own cache still sets the variable itself."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CAFA_CACHE_DIR", str(tmp_path_factory.mktemp("user-cache")))
        yield


@pytest.fixture(autouse=True)
def _no_experiment_from_an_earlier_test(monkeypatch):
    """mlflow.set_experiment exports MLFLOW_EXPERIMENT_ID, which tracking.configure trusts: a test that
    set up a store must not send the next test's runs to an experiment id its own store lacks."""
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
