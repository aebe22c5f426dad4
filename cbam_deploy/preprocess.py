"""Image preprocessing as an exported model's metadata describes it (input size, mean, std)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def load_image(path: str | Path, size: Sequence[int], mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """One RGB image -> 3 x H x W float32: resized (bilinear) to ``size`` (H, W), /255, normalised."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"image {str(path)!r} does not exist")
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise UsageError(f"cannot read image {str(path)!r}: {str(exc).splitlines()[0]}") from None
    h, w = int(size[0]), int(size[1])
    if rgb.size != (w, h):
        rgb = rgb.resize((w, h), Image.BILINEAR)
    x = np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return (x - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[:, None, None]


def image_files(folder: str | Path) -> list[Path]:
    """Image files in a folder, sorted by name (so calibration is reproducible)."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def load_image_folder(folder: str | Path, size: Sequence[int], mean: Sequence[float], std: Sequence[float],
                      limit: int | None = None) -> np.ndarray:
    files = image_files(folder)
    if not files:
        raise UsageError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {str(folder)!r}")
    return np.stack([load_image(f, size, mean, std) for f in files[:limit]])


def load_npy(path: str | Path, *, what: str = "batch") -> np.ndarray:
    """A .npy array, never unpickling objects; a missing or unreadable file is one line."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{what} file {str(path)!r} does not exist")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise UsageError(f"cannot read {what} file {str(path)!r}: {str(exc).splitlines()[0]}") from None
