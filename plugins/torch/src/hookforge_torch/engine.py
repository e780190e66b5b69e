"""Device, precision and randomness helpers shared by the torch loops and models."""

from __future__ import annotations

import random
import sys
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import torch

from hookforge.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> a CUDA device if there is one (``LOCAL_RANK``'s under torchrun), else CPU;
    ``cuda:N`` is checked."""
    import os

    if name in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if name == "auto":
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"loop.device is '{name}' but CUDA is not available on this machine; "
                              f"use auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"loop.device is '{name}' but there are only "
                              f"{torch.cuda.device_count()} CUDA devices")
    return device


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        import os

        # cuBLAS needs this workspace setting to be deterministic (PyTorch's reproducibility notes).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def rng_state() -> dict[str, Any]:
    """Every RNG, in a form ``torch.load(weights_only=True)`` accepts (tensors, lists, numbers)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def autocast(device: torch.device, enabled: bool, dtype: str) -> AbstractContextManager[Any]:
    """torch.autocast on CPU or CUDA with bfloat16 or float16; a no-op when disabled."""
    if not enabled:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=getattr(torch, dtype))


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of the process so far: CUDA allocator peak on GPU, max RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The network inside a DistributedDataParallel wrapper (or the module itself)."""
    from torch.nn.parallel import DistributedDataParallel

    return module.module if isinstance(module, DistributedDataParallel) else module


class Distributed:
    """The process group of a ``torchrun`` launch (gloo on CPU, NCCL on CUDA), or a single process."""

    def __init__(self, device: torch.device) -> None:
        import os

        import torch.distributed as dist

        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.enabled = self.world_size > 1
        self.owns_group = False
        if self.enabled and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            self.owns_group = True

    def all_sum(self, *values: float) -> list[float]:
        """Sum numbers over every process (one collective; used at reporting points only)."""
        if not self.enabled:
            return list(values)
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def gather(self, value: Any) -> list[Any]:
        if not self.enabled:
            return [value]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist

            # Leave together: a process that tears its gloo connections down while another still
            # uses them makes that one abort.
            dist.barrier()
            dist.destroy_process_group()


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    if device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
            for k, v in batch.items()}


def catch_interrupts(owner: Any, attribute: str, message: str) -> dict[int, Any]:
    """Ctrl-C and SIGTERM set ``owner.<attribute>`` to True, so the loop saves 'last' at its next
    boundary (a step, an iteration) and stops; a second one stops at once. Returns the previous
    handlers for :func:`restore_signal_handlers` (none outside the main thread)."""
    import logging
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}

    def request(signum: int, frame: Any) -> None:
        if getattr(owner, attribute):  # the second one: stop now
            raise KeyboardInterrupt
        setattr(owner, attribute, True)
        logging.getLogger("hookforge").warning("interrupt received: %s (again to stop now)", message)

    return {sig: signal.signal(sig, request) for sig in (signal.SIGINT, signal.SIGTERM)}


def restore_signal_handlers(previous: dict[int, Any]) -> None:
    import signal

    for sig, handler in previous.items():
        signal.signal(sig, handler)
