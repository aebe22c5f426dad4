"""Training settings for the reference task, importable without torch (command-line help shows them)."""

from __future__ import annotations

from dataclasses import dataclass

from ..layout import REFERENCE_ARCH

DEFAULT_SEED = 2018  # CBAM's year: the dataset's seed


@dataclass
class TrainConfig:
    variant: str | None
    arch: str = REFERENCE_ARCH
    epochs: int = 32
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    train_count: int = 8000
    heldout_count: int = 1000
    seed: int = 0
    data_seed: int = DEFAULT_SEED
    threads: int = 2
    ratio: int = 16
    kernel_size: int = 7
