"""Where INT8 calibration data comes from: an image folder, a .npy batch, the reference task's
training split, or (only when asked) seeded synthetic data, flagged in the report."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import UsageError
from ..preprocess import load_image_folder, load_npy

SYNTHETIC = "synthetic"
REFERENCE = "reference"
DEFAULT_COUNT = 256


def load_calibration(source: str, *, input_shape: Sequence[int], mean: Sequence[float] | None,
                     std: Sequence[float] | None, reference_task: bool, limit: int = DEFAULT_COUNT,
                     seed: int = 0, channel_order: str = "RGB") -> tuple[np.ndarray, str, str | None]:
    """Returns (N x C x H x W float32 batch, a label for the report, a warning or None).
    ``channel_order``: the model's (its recorded preprocessing), for a folder of images."""
    c, h, w = (int(d) for d in input_shape[1:])
    if source == SYNTHETIC:
        data = np.random.default_rng(seed).standard_normal((min(limit, 64), c, h, w)).astype(np.float32)
        return data, f"synthetic (seeded normal, seed {seed})", (
            "INT8 calibrated on synthetic data: scales do not reflect real inputs; accuracy is not representative")
    if source == REFERENCE:
        if not reference_task:
            raise UsageError("--calibration reference is only for reference-task models (host resnet_mini)")
        from ..reference.dataset import generate, to_tensor_batch

        images, _ = generate(limit, split="train")  # never the held-out split used for accuracy
        return to_tensor_batch(images, mean, std), f"reference task, {limit} training-split images", None
    path = Path(source)
    if path.is_dir():
        if mean is None or std is None or c != 3:
            raise UsageError("calibration from an image folder needs a 3-channel image model with mean/std; "
                             "give a preprocessed .npy batch instead")
        data = load_image_folder(path, (h, w), mean, std, limit=limit, channel_order=channel_order)
        return data, f"{len(data)} images from {path}", None
    if path.suffix == ".npy":
        data = load_npy(path, what="calibration")
        if data.ndim != 4 or data.shape[1] != c:
            raise UsageError(f"calibration batch {source!r} has shape {list(data.shape)}; expected N x {c} x H x W "
                             "(preprocessed like the model's input)")
        return np.ascontiguousarray(data[:limit], dtype=np.float32), f"{min(len(data), limit)} samples from {path}", None
    raise UsageError(f"--calibration {source!r} is neither a folder of images, a .npy file, "
                     f"'{REFERENCE}' nor '{SYNTHETIC}'")
