"""hookforge-torch: the neural training engine every torch-based plugin reuses.

``TorchModel`` (model.py) is the base class of neural models; ``SupervisedLoop`` (loop.py) trains
any of them with AdamW/Adam/SGD, warmup schedules, AMP, gradient accumulation and clipping, early
stopping, atomic checkpoints and exact resume. Modules import torch lazily where they can, so
``hookforge plugins`` does not pay for it.
"""

__version__ = "0.1.0"
