"""hookforge-mlflow: the ``mlflow`` tracker. mlflow is imported only when a run uses it."""

__version__ = "0.1.0"
