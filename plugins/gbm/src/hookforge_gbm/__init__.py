"""hookforge-gbm: LightGBM, XGBoost and scikit-learn models on tabular data.

Every model here is a :class:`~hookforge_gbm.base.TabularModel`: a scikit-learn preprocessing
pipeline fit on the training split, then an estimator; both are saved in formats that load without
running code (LightGBM text, XGBoost JSON, skops). Nothing here imports torch.
"""
