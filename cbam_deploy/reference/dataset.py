"""The reference task: 64x64 RGB images of one shape on a cluttered, noisy background.

Deterministic: image ``i`` of a split is drawn from its own generator seeded with
``(seed, split, i)``, so any image can be regenerated alone and a split never depends on its size.
Where the object is varies, so spatial attention has something to find.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle", "cross", "star")
IMAGE_SIZE = 64
from .config import DEFAULT_SEED
SPLITS = {"train": 0, "heldout": 1}


@dataclass(frozen=True)
class Sample:
    image: np.ndarray  # H x W x 3 uint8
    label: int
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 of the object


def _polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if kind == "square":
        pts = [(math.cos(a), math.sin(a)) for a in (math.pi / 4 + k * math.pi / 2 for k in range(4))]
    elif kind == "triangle":
        pts = [(math.cos(a), math.sin(a)) for a in (-math.pi / 2 + k * 2 * math.pi / 3 for k in range(3))]
    elif kind == "star":
        pts = [((1.0 if k % 2 == 0 else 0.42) * math.cos(a), (1.0 if k % 2 == 0 else 0.42) * math.sin(a))
               for k, a in enumerate(-math.pi / 2 + j * math.pi / 5 for j in range(10))]
    elif kind == "cross":
        t = 0.32
        pts = [(-t, -1), (t, -1), (t, -t), (1, -t), (1, t), (t, t), (t, 1), (-t, 1), (-t, t), (-1, t), (-1, -t), (-t, -t)]
    else:
        raise ValueError(kind)
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in pts]


def _colour(rng: np.random.Generator, far_from: np.ndarray | None = None) -> tuple[int, int, int]:
    """A random colour; at least 200 (L1 over RGB) away from ``far_from`` so the object is visible."""
    while True:
        col = rng.integers(0, 256, size=3)
        if far_from is None or np.abs(col - far_from).sum() >= 200:
            return tuple(int(v) for v in col)


def make_sample(rng: np.random.Generator, label: int | None = None) -> Sample:
    """Draw one image: noisy background, clutter (lines, dots), then one shape of class ``label``."""
    size = IMAGE_SIZE
    label = int(rng.integers(len(CLASSES))) if label is None else label
    background = rng.integers(0, 256, size=3)
    img = Image.new("RGB", (size, size), tuple(int(v) for v in background))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 8))):  # clutter: thin lines and small dots
        x0, y0, x1, y1 = (float(v) for v in rng.uniform(0, size, 4))
        draw.line([(x0, y0), (x1, y1)], fill=_colour(rng), width=1)
    for _ in range(int(rng.integers(2, 6))):
        x, y = rng.uniform(0, size, 2)
        r = float(rng.uniform(1, 2.5))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=_colour(rng))

    r = float(rng.uniform(9, 16))
    cx, cy = (float(v) for v in rng.uniform(r + 1, size - r - 1, 2))
    angle = float(rng.uniform(0, 2 * math.pi))
    fill = _colour(rng, background)
    kind = CLASSES[label]
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    else:
        draw.polygon(_polygon(kind, cx, cy, r, angle), fill=fill)
    box = (int(cx - r), int(cy - r), int(math.ceil(cx + r)), int(math.ceil(cy + r)))

    arr = np.asarray(img, dtype=np.int16)
    noise = rng.normal(0, 10, size=arr.shape).round().astype(np.int16)
    return Sample(np.clip(arr + noise, 0, 255).astype(np.uint8), label, box)


def generate(count: int, *, split: str = "train", seed: int = DEFAULT_SEED, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images ``start .. start+count-1`` of a split (N x 64 x 64 x 3 uint8) and labels (N int64), classes balanced."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    images = np.empty((count, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    labels = np.empty(count, np.int64)
    for i in range(count):
        sample = sample_at(start + i, split=split, seed=seed)
        images[i], labels[i] = sample.image, sample.label
    return images, labels


def sample_at(index: int, *, split: str = "heldout", seed: int = DEFAULT_SEED) -> Sample:
    """Image ``index`` of a split, with its object's box (for attention-map checks)."""
    return make_sample(np.random.default_rng([seed, SPLITS[split], index]), label=index % len(CLASSES))


def write_png_folder(out: str | Path, count: int, *, split: str = "heldout", seed: int = DEFAULT_SEED) -> Path:
    """Write a split as PNG files plus ``labels.csv`` (file, label, class); returns the csv path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images, labels = generate(count, split=split, seed=seed)
    rows = []
    for i, (image, label) in enumerate(zip(images, labels)):
        name = f"{split}_{i:05d}_{CLASSES[label]}.png"
        Image.fromarray(image).save(out / name, format="PNG", optimize=False, compress_level=6)
        rows.append((name, int(label), CLASSES[label]))
    labels_path = out / "labels.csv"
    with open(labels_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "label", "class"])
        writer.writerows(rows)
    return labels_path


def to_tensor_batch(images: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """N x H x W x 3 uint8 -> N x 3 x H x W float32, scaled to [0, 1] then normalised."""
    x = images.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    return (x - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[:, None, None]
