"""GO-term predictors: naive, knn, homology (DIAMOND) and neural, all speaking `base.Predictor`."""
