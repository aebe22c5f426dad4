"""Spatial attention maps from the PyTorch model, and pictures of them over the input image.

A spatial gate is a Sigmoid module whose output has one channel (N x 1 x H x W); hooks record it
during an eager forward pass. Works for every variant (``spatialattention.sigmoid``, ``sa.sigmoid``).
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .errors import UsageError


def spatial_gates(model: nn.Module, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Block name -> N x H x W spatial attention map, for every spatial gate in ``model``."""
    maps: dict[str, np.ndarray] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Sigmoid):
            def record(_m, _inp, out, name=name):
                if out.dim() == 4 and out.shape[1] == 1:
                    maps[name.rsplit(".cbam.", 1)[0] if ".cbam." in name else name] = out[:, 0].detach().numpy()
            hooks.append(module.register_forward_hook(record))
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    return maps


def pick_block(maps: dict[str, np.ndarray], block: str | None) -> str:
    if not maps:
        raise UsageError("the model has no spatial attention gate to show")
    if block is None:
        return next(iter(maps))  # the first block: the highest resolution
    if block not in maps:
        raise UsageError(f"no spatial attention in block {block!r}; blocks: {', '.join(maps)}")
    return block


def _heat(values: np.ndarray) -> np.ndarray:
    """[0, 1] -> RGB uint8, a blue-cyan-yellow-red ramp."""
    v = np.clip(values, 0, 1)[..., None]
    stops = np.array([[0, 0, 128], [0, 160, 255], [255, 230, 0], [220, 0, 0]], np.float32)
    pos = v * (len(stops) - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, len(stops) - 2)
    t = pos - lo
    return (stops[lo[..., 0]] * (1 - t) + stops[lo[..., 0] + 1] * t).astype(np.uint8)


def render(images: Sequence[np.ndarray], maps: np.ndarray, *, titles: Sequence[str], scale: int = 4) -> bytes:
    """One row per image: the input, then the map (min-max normalised) over it. PNG bytes."""
    from PIL import Image, ImageDraw

    rows = []
    for image, amap, title in zip(images, maps, titles):
        h, w = image.shape[:2]
        big = Image.fromarray(image).resize((w * scale, h * scale), Image.NEAREST)
        norm = (amap - amap.min()) / (np.ptp(amap) or 1.0)
        heat = Image.fromarray(_heat(norm)).resize(big.size, Image.BILINEAR)
        overlay = Image.blend(big.convert("RGB"), heat, 0.55)
        row = Image.new("RGB", (big.width * 2 + 8, big.height + 18), "white")
        row.paste(big, (0, 18))
        row.paste(overlay, (big.width + 8, 18))
        ImageDraw.Draw(row).text((2, 2), title, fill="black")
        rows.append(row)
    sheet = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)), "white")
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()
