"""`python -m pipelines STEP [flags]` = `cafa STEP [flags]`."""

import sys

from pipelines.cli import main

sys.exit(main())
