"""The reference dataset: deterministic to the byte, balanced, split-separated, objects in the box."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from cbam_deploy.reference.dataset import CLASSES, generate, sample_at, write_png_folder


def test_same_seed_same_bytes(tmp_path):
    write_png_folder(tmp_path / "a", 20, split="heldout", seed=11)
    write_png_folder(tmp_path / "b", 20, split="heldout", seed=11)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(files) == 21  # 20 PNGs + labels.csv
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_other_seed_other_images():
    a, _ = generate(5, seed=1)
    b, _ = generate(5, seed=2)
    assert not np.array_equal(a, b)


def test_splits_do_not_share_images():
    train, _ = generate(50, split="train")
    held, _ = generate(50, split="heldout")
    assert not any(np.array_equal(t, h) for t in train for h in held)


def test_an_image_does_not_depend_on_how_many_were_generated():
    few, _ = generate(3, split="train", start=10)
    many, _ = generate(20, split="train")
    assert np.array_equal(few, many[10:13])


def test_shape_dtype_and_balanced_labels():
    images, labels = generate(25)
    assert images.shape == (25, 64, 64, 3) and images.dtype == np.uint8
    assert np.bincount(labels, minlength=len(CLASSES)).tolist() == [5] * len(CLASSES)


def test_png_folder_round_trips_with_labels(tmp_path):
    labels_csv = write_png_folder(tmp_path, 10, split="heldout")
    rows = list(csv.DictReader(labels_csv.open()))
    images, labels = generate(10, split="heldout")
    for row, image, label in zip(rows, images, labels):
        assert int(row["label"]) == label and row["class"] == CLASSES[label]
        assert np.array_equal(np.asarray(Image.open(tmp_path / row["file"])), image)


@pytest.mark.parametrize("index", range(10))
def test_object_differs_from_background_inside_its_box(index):
    # Where the object is matters: inside its box the image differs from the border's colour.
    s = sample_at(index)
    x0, y0, x1, y1 = s.box
    assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
    inside = s.image[y0:y1, x0:x1].reshape(-1, 3).astype(int)
    border = np.median(np.concatenate([s.image[0], s.image[-1]]).astype(int), axis=0)
    assert (np.abs(inside - border).sum(1) > 120).mean() > 0.2
