"""cafa-mlflow: GO term prediction for proteins (CAFA-6), tracked with MLflow and versioned with DVC."""

__version__ = "0.1.0"
