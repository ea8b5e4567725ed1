"""Thin entry points, one per MLflow entry point / DVC stage: parse parameters, open the run, call the
library, log. Run as `python -m pipelines.<name>`, `cafa <name>` or `mlflow run . -e <name>`."""
