"""Odd images, bad checkpoints and hostile .npy batches: read correctly, or refused by name in one line.

An odd encoding of an image must give the model the same pixels as its plain 8-bit RGB twin.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cbam_deploy.errors import CheckpointError, UsageError
from cbam_deploy.preprocess import load_rgb

from .conftest import assert_refused, run_cli

RNG = np.random.default_rng(7)
PIXELS = RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)
GREY = RNG.integers(0, 256, (32, 32), dtype=np.uint8)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    Image.fromarray(PIXELS).save(folder / "rgb.png")
    Image.fromarray(GREY, "L").save(folder / "grey8.png")
    Image.fromarray(GREY.astype(np.uint16) * 257).save(folder / "grey16.png")  # Pillow mode I;16
    Image.fromarray(np.dstack([GREY, np.full_like(GREY, 255)]), "LA").save(folder / "grey_alpha_opaque.png")
    Image.fromarray(np.dstack([PIXELS, np.full((32, 32), 255, np.uint8)])).save(folder / "opaque.png")
    alpha = np.dstack([PIXELS, np.full((32, 32), 255, np.uint8)])
    alpha[:4, :4, 3] = 0
    Image.fromarray(alpha).save(folder / "transparent.png")
    palette = Image.fromarray(PIXELS).quantize(64)
    palette.save(folder / "palette.png")
    palette.convert("RGB").save(folder / "palette_twin.png")
    Image.fromarray(PIXELS).convert("CMYK").save(folder / "cmyk.jpg", quality=100)
    tall = Image.fromarray(PIXELS[:, :16])  # 32 high, 16 wide, stored sideways with EXIF orientation 6
    exif = Image.Exif()
    exif[0x0112] = 6
    tall.transpose(Image.Transpose.ROTATE_90).save(folder / "exif_rotated.png", exif=exif)
    tall.save(folder / "exif_twin.png")
    (folder / "text.png").write_text("not an image\n")
    (folder / "folder.png").mkdir()
    (folder / "truncated.png").write_bytes((folder / "rgb.png").read_bytes()[:200])
    Image.new("1", (13500, 13500)).save(folder / "bomb.png")  # 182 M pixels: Pillow's bomb limit is 179 M
    frames = [Image.fromarray(PIXELS), Image.fromarray(255 - PIXELS)]
    frames[0].save(folder / "animated.png", save_all=True, append_images=frames[1:])
    return folder


@pytest.mark.parametrize("odd, twin", [
    ("grey16.png", "grey8.png"), ("grey_alpha_opaque.png", "grey8.png"), ("opaque.png", "rgb.png"),
    ("palette.png", "palette_twin.png"), ("exif_rotated.png", "exif_twin.png"),
])
def test_odd_images_give_the_model_the_same_pixels_as_their_plain_twin(images: Path, odd: str, twin: str):
    size = (32, 16) if "exif" in odd else (32, 32)
    assert np.array_equal(load_rgb(images / odd, size), load_rgb(images / twin, size))


def test_cmyk_jpeg_is_read_as_its_colours_not_inverted(images: Path):
    error = np.abs(load_rgb(images / "cmyk.jpg", (32, 32)).astype(int) - PIXELS.astype(int))
    assert error.mean() < 2  # JPEG's own loss at quality 100; inverted or channel-swapped colours are ~85


def test_sixteen_bit_grey_gives_the_same_answer_as_its_8_bit_twin(capfd, exported: Path, images: Path):
    results = [json.loads(run_cli(capfd, "cbam-infer", exported, images / name, "--json").out)["results"][0]["top_k"]
               for name in ("grey16.png", "grey8.png")]
    assert results[0] == results[1]


@pytest.mark.parametrize("name, needle", [
    ("transparent.png", "transparent"), ("text.png", "cannot read image"), ("truncated.png", "cannot read image"),
    ("bomb.png", "too large"), ("animated.png", "animated"), ("missing.png", "does not exist"),
    ("folder.png", "is a folder"),
])
def test_unreadable_images_are_refused_by_name(capfd, exported: Path, images: Path, name: str, needle: str):
    line = assert_refused(run_cli(capfd, "cbam-infer", exported, images / name), "cbam-infer", 2, needle)
    assert name in line


def test_not_an_image_suffix_is_refused(capfd, exported: Path, images: Path):
    assert_refused(run_cli(capfd, "cbam-infer", exported, images / "text.gif"), "cbam-infer", 2, "text.gif")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    import torch

    folder = tmp_path_factory.mktemp("checkpoints")
    marker = folder / "MARKER_unpickled"
    (folder / "text.pt").write_text("hello world\nthis is text\n")
    (folder / "one_byte.pt").write_bytes(b"e")
    (folder / "empty.pt").write_bytes(b"")
    (folder / "random.pt").write_bytes(np.random.default_rng(0).bytes(3000))
    torch.save([1, 2, 3], folder / "list.pt")
    torch.save({"weight": "not a tensor"}, folder / "strings.pt")

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"state_dict": {"x": Payload()}}, folder / "code.pt")
    (folder / "a_folder.pt").mkdir()
    return folder, marker


@pytest.mark.parametrize("name, needle", [
    ("text.pt", "not a PyTorch checkpoint"), ("one_byte.pt", "not a PyTorch checkpoint"),
    ("empty.pt", "not a PyTorch checkpoint"), ("random.pt", "not a PyTorch checkpoint"),
    ("list.pt", "no state_dict"), ("strings.pt", "no state_dict"), ("code.pt", "could run code"),
    ("a_folder.pt", "not a file"), ("missing.pt", "does not exist"),
])
def test_bad_checkpoints_are_one_line_usage_errors(capfd, tmp_path: Path, monkeypatch, checkpoints, name: str,
                                                   needle: str):
    folder, marker = checkpoints
    monkeypatch.chdir(tmp_path)
    result = run_cli(capfd, "cbam-export", "--weights", folder / name, "--out", tmp_path / "models")
    line = assert_refused(result, "cbam-export", 2, needle)
    assert name in line and not marker.exists() and os.listdir(tmp_path) == []


def test_bad_checkpoint_through_evaluate_and_the_api(capfd, checkpoints):
    from cbam_deploy.checkpoint import read_checkpoint

    folder, marker = checkpoints
    assert_refused(run_cli(capfd, "cbam-evaluate", folder / "text.pt", "--variant", "original"), "cbam-evaluate", 2,
                   "text.pt")
    with pytest.raises(CheckpointError, match="could run code"):
        read_checkpoint(folder / "code.pt")
    assert not marker.exists()


@pytest.mark.parametrize("array, needle", [
    (np.zeros((0, 3, 32, 32), np.float32), "non-empty"),
    (np.zeros((2, 3, 32), np.float32), "shape"),
    (np.zeros((2, 3, 32, 32), np.int64), "int64"),
    (np.full((1, 3, 32, 32), np.nan, np.float32), "NaN"),
])
def test_hostile_npy_batches(capfd, tmp_path: Path, exported: Path, array: np.ndarray, needle: str):
    path = tmp_path / "batch.npy"
    np.save(path, array)
    result = run_cli(capfd, "cbam-infer", exported, path, "--json")
    assert_refused(result, "cbam-infer", 2, needle)
    assert result.out == ""


def test_pickled_npy_is_never_unpickled(capfd, tmp_path: Path, exported: Path):
    marker = tmp_path / "MARKER_npy"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    np.save(tmp_path / "batch.npy", np.array([Payload()], dtype=object), allow_pickle=True)
    assert_refused(run_cli(capfd, "cbam-infer", exported, tmp_path / "batch.npy"), "cbam-infer", 2, "batch.npy")
    assert not marker.exists()
    with pytest.raises(UsageError):
        from cbam_deploy.preprocess import load_npy

        load_npy(tmp_path / "batch.npy")


@pytest.mark.parametrize("header_shape, payload, needle", [
    ((10**12, 3), 16, "claims"),  # a 12 TB array in a 100-byte file: refused before allocating
    ((2, 3, 32, 32), 100, "claims"),  # truncated
])
def test_npy_headers_that_lie_are_refused_before_allocating(capfd, tmp_path: Path, exported: Path,
                                                           header_shape: tuple[int, ...], payload: int, needle: str):
    import io

    from numpy.lib import format as npy

    buffer = io.BytesIO()
    npy.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": header_shape})
    (tmp_path / "lie.npy").write_bytes(buffer.getvalue() + b"\0" * payload)
    assert_refused(run_cli(capfd, "cbam-infer", exported, tmp_path / "lie.npy"), "cbam-infer", 2, needle, "lie.npy")
