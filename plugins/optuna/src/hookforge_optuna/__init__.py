"""hookforge-optuna: the ``optuna`` searcher. optuna is imported only when a search runs."""

__version__ = "0.1.0"
