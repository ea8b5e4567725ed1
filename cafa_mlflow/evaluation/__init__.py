"""The CAFA evaluator: scorer (F-max, weighted F-max, S-min), threshold curves, reports."""
