"""PyTorch eager backend: the reference every other backend is compared with. ``TorchRunner`` is
loaded on first use, so the backend table (``entry``) can be imported without torch."""

from __future__ import annotations

from typing import Any

__all__ = ["TorchRunner"]


def __getattr__(name: str) -> Any:
    if name == "TorchRunner":
        from .runner import TorchRunner

        return TorchRunner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
