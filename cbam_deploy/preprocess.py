"""Image preprocessing as an exported model's metadata describes it (input size, mean, std)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


# Pillow modes and how each becomes 8-bit RGB; anything else is refused by name.
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")


def _to_rgb(img, path: Path):
    """8-bit RGB, as the model was trained: EXIF orientation applied, 16-bit grey scaled (not
    clipped, which made a 16-bit PNG mostly white), palette and CMYK converted, alpha refused unless
    every pixel is opaque (what sits behind a transparent pixel is not in the file)."""
    from PIL import Image, ImageOps

    if getattr(img, "n_frames", 1) > 1:
        raise UsageError(f"image {str(path)!r} is animated ({img.n_frames} frames); give a single frame")
    img = ImageOps.exif_transpose(img)
    if img.mode in _SIXTEEN_BIT or (img.mode == "I" and img.format == "PNG"):
        grey = np.asarray(img, dtype=np.float64)
        if grey.size and (grey.min() < 0 or grey.max() > 65535):
            raise UsageError(f"image {str(path)!r}: 16-bit values out of range")
        img = Image.fromarray(np.round(grey / 257.0).astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in _ALPHA:
        rgba = img.convert("RGBA")
        if np.asarray(rgba)[..., 3].min() < 255:
            raise UsageError(f"image {str(path)!r} has transparent pixels (mode {img.mode}); the model sees no "
                             "transparency: flatten it onto a background first")
        img = rgba
    if img.mode not in ("RGB", "RGBA", "L", "1", "CMYK", "YCbCr"):
        raise UsageError(f"image {str(path)!r} has pixel mode {img.mode!r}, which cannot be read as RGB "
                         "(supported: 8-bit RGB/RGBA/grey, 16-bit grey, palette, CMYK)")
    return img.convert("RGB")


def load_rgb(path: str | Path, size: Sequence[int]) -> np.ndarray:
    """One image -> H x W x 3 uint8 RGB, resized (bilinear) to ``size`` (H, W): what the model sees,
    before scaling; also what attention maps are drawn on."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"image {str(path)!r} " + ("is a folder" if path.is_dir() else "does not exist or is not a file"))
    try:
        with warnings.catch_warnings():
            # Past Pillow's pixel limit an image is a decompression bomb until proven otherwise.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                rgb = _to_rgb(img, path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UsageError(f"image {str(path)!r} is too large to decode safely ({exc.__class__.__name__}: "
                         f"over {Image.MAX_IMAGE_PIXELS} pixels)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        if isinstance(exc, UsageError):
            raise
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"cannot read image {str(path)!r}: {reason}") from None
    h, w = int(size[0]), int(size[1])
    if rgb.size != (w, h):
        rgb = rgb.resize((w, h), Image.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


CHANNEL_ORDERS = ("RGB", "BGR")


def load_image(path: str | Path, size: Sequence[int], mean: Sequence[float], std: Sequence[float],
               channel_order: str = "RGB") -> np.ndarray:
    """One image -> 3 x H x W float32: resized (bilinear) to ``size`` (H, W), channels in
    ``channel_order`` (mean and std are in that order too), /255, normalised."""
    x = load_rgb(path, size).astype(np.float32).transpose(2, 0, 1) / 255.0
    if channel_order == "BGR":
        x = x[::-1]
    return (x - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[:, None, None]


def preprocess_images(paths: Sequence[str | Path], preprocessing: dict) -> np.ndarray:
    """Images -> the N x 3 x H x W float32 batch a model expects, from the ``preprocessing`` its export
    recorded (``ExportedModel.preprocessing``, or ``export.json``'s ``metadata.preprocessing``)."""
    if not preprocessing.get("mean") or not preprocessing.get("std") or not preprocessing.get("input_size"):
        raise UsageError("this model's metadata records no image preprocessing (mean, std, input_size); "
                         "export it with --mean R,G,B --std R,G,B to record them")
    order = preprocessing.get("channel_order", "RGB")
    return np.stack([load_image(p, preprocessing["input_size"], preprocessing["mean"], preprocessing["std"], order)
                     for p in paths])


def image_files(folder: str | Path) -> list[Path]:
    """Image files in a folder, sorted by name (so calibration is reproducible)."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def load_image_folder(folder: str | Path, size: Sequence[int], mean: Sequence[float], std: Sequence[float],
                      limit: int | None = None, channel_order: str = "RGB") -> np.ndarray:
    files = image_files(folder)
    if not files:
        raise UsageError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {str(folder)!r}")
    return np.stack([load_image(f, size, mean, std, channel_order) for f in files[:limit]])


def load_npy(path: str | Path, *, what: str = "batch") -> np.ndarray:
    """A .npy array, never unpickling objects; a missing or unreadable file is one line."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{what} file {str(path)!r} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        _check_npy_size(path)
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        if isinstance(exc, UsageError):
            raise
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"cannot read {what} file {str(path)!r}: {reason}") from None


def _check_npy_size(path: Path) -> None:
    """A .npy header can claim any shape: refuse one that claims more bytes than the file holds
    (it would be an out-of-memory error, or a truncated file) before allocating anything."""
    from numpy.lib import format as npy

    with open(path, "rb") as f:
        reader = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}.get(npy.read_magic(f))
        if reader is None:
            return  # a newer format version: np.load checks it
        shape, _, dtype = reader(f)
        if dtype.hasobject:
            return  # np.load refuses it (allow_pickle=False) with its own message
        claimed = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
        if claimed > path.stat().st_size - f.tell():
            raise UsageError(f"{str(path)!r} claims a {dtype} array of shape {list(shape)} ({claimed} bytes) "
                             "but holds less: truncated or not a real .npy file")
