"""Accuracy on the reference task's held-out split, for any runner, against eager."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from ..models.hosts import REFERENCE_MEAN, REFERENCE_STD
from .dataset import DEFAULT_SEED, generate, to_tensor_batch

Predict = Callable[[np.ndarray], np.ndarray]  # N x 3 x 64 x 64 float32 -> N x classes logits
HELDOUT_COUNT = 1000


@dataclass
class AccuracyReport:
    count: int
    top1: float
    reference_top1: float | None = None
    top1_agreement: float | None = None
    max_scaled_logit_error: float | None = None

    @property
    def accuracy_drop_points(self) -> float | None:
        return None if self.reference_top1 is None else 100 * (self.reference_top1 - self.top1)

    def to_dict(self) -> dict[str, float | int | None]:
        return {**asdict(self), "accuracy_drop_points": self.accuracy_drop_points}


def heldout_batch(count: int = HELDOUT_COUNT, *, seed: int = DEFAULT_SEED,
                  mean: tuple[float, ...] = REFERENCE_MEAN, std: tuple[float, ...] = REFERENCE_STD) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` held-out images, preprocessed, and their labels."""
    images, labels = generate(count, split="heldout", seed=seed)
    return to_tensor_batch(images, mean, std), labels


def _run(predict: Predict, x: np.ndarray, batch_size: int) -> np.ndarray:
    return np.concatenate([predict(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def evaluate_heldout(predict: Predict, *, reference: Predict | None = None, count: int = HELDOUT_COUNT,
                     batch_size: int = 100, seed: int = DEFAULT_SEED) -> AccuracyReport:
    """Top-1 of ``predict`` on the held-out split; with ``reference`` (eager), agreement and logit error."""
    x, labels = heldout_batch(count, seed=seed)
    logits = _run(predict, x, batch_size)
    report = AccuracyReport(count=count, top1=float((logits.argmax(1) == labels).mean()))
    if reference is not None:
        ref = _run(reference, x, batch_size)
        report.reference_top1 = float((ref.argmax(1) == labels).mean())
        report.top1_agreement = float((logits.argmax(1) == ref.argmax(1)).mean())
        report.max_scaled_logit_error = float(np.abs(logits - ref).max() / np.abs(ref).max())
    return report
