"""hookforge-comet: the ``comet`` tracker. comet_ml is imported only when a run uses it."""

__version__ = "0.1.0"
