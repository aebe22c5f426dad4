"""PyTorch eager backend: the reference every other backend is compared with."""

from .runner import TorchRunner

__all__ = ["TorchRunner"]
