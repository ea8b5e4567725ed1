"""What each step does, as library functions: prepare, fit a member, train the neural member, fit the
ensemble, tune, predict a submission. `pipelines/` only parses flags, opens the MLflow run and calls these."""
