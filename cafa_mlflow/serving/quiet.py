"""MLflow's artifact progress bars off where they would only print noise."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_downloads() -> Iterator[None]:
    """No MLflow download progress bar (small files read back, the model MLflow reloads to check its input example);
    the environment variable as it was after."""
    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR as BAR

    before = os.environ.get(BAR.name)
    os.environ[BAR.name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(BAR.name, None)
        else:
            os.environ[BAR.name] = before
