"""Spatial attention maps from the PyTorch model, and pictures of them over the input image.

Gates are recorded as the eager forward computes them (a ``TorchFunctionMode``), recognised the way
the ONNX attention finder recognises them (``precision/attention.py``): ``sigmoid``, ``hardsigmoid``,
``relu6(x + 3) / 6``, moved by view ops, shifted or scaled by constants, summed or multiplied with
other gates, and applied to a feature map by a multiplication (``x * sigmoid(x)`` and h_swish are
activations). Gates applied one after the other (CBAM's channel then spatial gate, Coordinate
Attention's ``x * a_w * a_h``), or to the same input (``parallel``), form one block, named after the
module that holds them. A block's map is the product of its gates that extend over height or width
(CBAM's N x 1 x H x W gate; Coordinate Attention's N x C x H x 1 times N x C x 1 x W), averaged over
channels (N x H x W); a block with channel gates only (SE, ECA) has no spatial map.
"""

from __future__ import annotations

import io
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .errors import UsageError

_ACTIVATIONS = {torch.sigmoid, torch.Tensor.sigmoid, F.sigmoid, F.hardsigmoid}
_CLIPS = {F.relu6, F.hardtanh, torch.clamp, torch.clip, torch.Tensor.clamp, torch.Tensor.clip}
_VIEWS = {name for name in ("unsqueeze", "squeeze", "expand", "expand_as", "view", "view_as", "reshape", "permute",
                            "transpose", "repeat", "flatten", "contiguous", "__getitem__", "unflatten", "tile")}
_ADD = {torch.add, torch.Tensor.add, torch.Tensor.__add__, torch.Tensor.__radd__}
_MUL = {torch.mul, torch.Tensor.mul, torch.Tensor.__mul__, torch.Tensor.__rmul__}
_DIV = {torch.div, torch.Tensor.div, torch.Tensor.__truediv__}
_BROADCASTS = {"expand", "expand_as", "repeat", "tile", "broadcast_to"}
_GATES = ("gate", "moved")  # an activation's output; a gate moved, shifted, scaled or combined


def _scalar(value: Any) -> float | None:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value)
    return None


class _GateRecorder(TorchFunctionMode):
    """Tags gate tensors as the forward computes them; records each gate applied to a feature map."""

    def __init__(self, modules: list[str]):
        super().__init__()
        self.modules = modules  # the stack of modules in their forward (hooks keep it)
        self.tags: dict[int, tuple[str, int | None]] = {}  # id(tensor) -> (kind, id of the activation's input)
        self.keep: list[torch.Tensor] = []  # tagged tensors stay alive, so their ids stay theirs
        self.applied: list[tuple] = []  # (module, gate, id(gated), id(output), the gate's extent)
        self.extent: dict[int, tuple[int, ...]] = {}  # a gate's shape before any broadcast (expand_as, repeat)

    def _tag(self, tensor: Any, kind: str, source: Any = None) -> None:
        if isinstance(tensor, torch.Tensor):
            self.tags[id(tensor)] = (kind, id(source) if source is not None else None)
            self.keep += [tensor, source]  # the source too: a new tensor must not take its id

    def _spread(self, out: Any, *gates: Any, broadcast: bool = False) -> None:
        """``out`` is a gate of the gates' extent (``broadcast``: expanded to more positions, not more values)."""
        extents = [self.extent.get(id(g), tuple(g.shape)) for g in gates if self._kind(g) in _GATES]
        if isinstance(out, torch.Tensor) and extents:
            shape = torch.broadcast_shapes(*extents) if broadcast else tuple(out.shape)
            self.extent[id(out)] = tuple(shape)

    def _kind(self, value: Any) -> str | None:
        return self.tags.get(id(value), (None, None))[0] if isinstance(value, torch.Tensor) else None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not args:
            return out
        first, second = args[0], (args[1] if len(args) > 1 else None)
        kinds = (self._kind(first), self._kind(second))
        if func in _ACTIVATIONS:
            self._tag(out, "gate", first)
        elif func in _CLIPS and kinds[0] == "plus3":  # relu6(x + 3): h_sigmoid's numerator
            self._retag(out, "relu6", first)
        elif func in _DIV and kinds[0] == "relu6" and _scalar(second) == 6.0:
            self._retag(out, "gate", first)
        elif func in _MUL:
            self._multiply(first, second, out)
        elif func in _ADD | _DIV and any(k in _GATES for k in kinds):
            if all(k in _GATES or _scalar(a) is not None for k, a in zip(kinds, (first, second))):
                self._tag(out, "moved")  # 1 + gate, gate + gate, gate / 2
                self._spread(out, first, second, broadcast=True)
        elif func in _ADD and isinstance(first, torch.Tensor) and _scalar(second) == 3.0:
            self._tag(out, "plus3", first)
        elif func in _ADD and isinstance(second, torch.Tensor) and _scalar(first) == 3.0:
            self._tag(out, "plus3", second)
        elif getattr(func, "__name__", "") in _VIEWS and kinds[0] in _GATES:
            for item in out if isinstance(out, (tuple, list)) else [out]:
                self._tag(item, "moved")
                self._spread(item, first, broadcast=func.__name__ in _BROADCASTS)
        return out

    def _retag(self, out: Any, kind: str, previous: torch.Tensor) -> None:
        """``out`` continues ``previous``'s activation (same source): relu6(x + 3), then / 6."""
        if isinstance(out, torch.Tensor):
            self.tags[id(out)] = (kind, self.tags[id(previous)][1])
            self.keep.append(out)

    def _multiply(self, a: Any, b: Any, out: Any) -> None:
        gates = [self._kind(v) in _GATES for v in (a, b)]
        if self._kind(a) == "relu6" and _scalar(b) is not None and abs(_scalar(b) - 1 / 6) < 1e-6:
            self._retag(out, "gate", a)
        elif all(gates) or (any(gates) and (_scalar(a) is not None or _scalar(b) is not None)):
            self._tag(out, "moved")  # a_h * a_w: a gate over both axes
            self._spread(out, a, b, broadcast=True)
        elif any(gates) and isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
            gate, x = (a, b) if gates[0] else (b, a)
            kind, source = self.tags[id(gate)]
            if kind == "gate" and source == id(x):
                return  # x * sigmoid(x), h_swish: an activation
            extent = self.extent.get(id(gate), tuple(gate.shape))
            self.applied.append((self.modules[-1] if self.modules else "", gate.detach(), id(x), id(out), extent))
            self.keep += [x, out]


def _block_name(names: list[str]) -> str:
    parts = [n.split(".") if n else [] for n in names]
    common = []
    for group in zip(*parts):
        if len(set(group)) > 1:
            break
        common.append(group[0])
    if common and common[-1] == "cbam":  # our hosts hold CBAM under layerX.Y.cbam: name the residual block
        common.pop()
    return ".".join(common) or names[0] or "model"


def spatial_gates(model: nn.Module, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Block name -> N x H x W spatial attention map, for every block with a spatial gate, in forward order."""
    stack: list[str] = []
    names = {id(m): n for n, m in model.named_modules()}

    def enter(module: nn.Module, _args) -> None:
        stack.append(names.get(id(module), stack[-1] if stack else ""))

    def leave(_module: nn.Module, _args, _out) -> None:
        stack.pop()

    hooks = torch.nn.modules.module
    handles = [hooks.register_module_forward_pre_hook(enter), hooks.register_module_forward_hook(leave)]
    recorder = _GateRecorder(stack)
    try:
        with torch.no_grad(), recorder:
            model.eval()(x)
    finally:
        for handle in handles:
            handle.remove()
    return _maps(recorder.applied)


def _maps(applied: list[tuple[str, torch.Tensor, int, int, tuple[int, ...]]]) -> dict[str, np.ndarray]:
    """Applications chained (one's output gated by the next) or sharing an input form one block."""
    parent: dict[int, int] = {}

    def root(key: int) -> int:
        while parent.get(key, key) != key:
            key = parent[key]
        return key

    for _, _, gated, output, _ in applied:
        parent[root(output)] = root(gated)
    blocks: dict[int, list[tuple[str, torch.Tensor, tuple[int, ...]]]] = {}
    for module, gate, gated, _, extent in applied:
        blocks.setdefault(root(gated), []).append((module, gate, extent))
    maps = {}
    for members in blocks.values():
        # Spatial: its own values extend over height or width (not an N x C gate expanded to the map).
        spatial = [g for _, g, e in members if g.dim() == 4 and len(e) == 4 and (e[-2] > 1 or e[-1] > 1)]
        if spatial:
            product = spatial[0]
            for g in spatial[1:]:
                product = product * g
            maps[_block_name([m for m, _, _ in members])] = product.mean(1).float().numpy()
    return maps


def pick_block(maps: dict[str, np.ndarray], block: str | None) -> str:
    if not maps:
        raise UsageError("the model has no spatial attention gate to show (channel-only gates such as SE and ECA "
                         "have no spatial map)")
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


def _colour_bar(height: int, low: float, high: float) -> "Image.Image":
    """A vertical bar of the ramp, ``high`` at the top, labelled with the gate values it spans."""
    from PIL import Image, ImageDraw

    ramp = _heat(np.linspace(1, 0, height)[:, None].repeat(12, 1))
    bar = Image.new("RGB", (64, height + 12), "white")
    bar.paste(Image.fromarray(ramp), (2, 6))
    draw = ImageDraw.Draw(bar)
    span = high - low
    decimals = min(6, max(2, int(np.ceil(-np.log10(span))) + 1)) if span > 0 else 3  # enough to tell them apart
    for y, value in ((6, high), (6 + height // 2, (low + high) / 2), (6 + height - 1, low)):
        draw.line([(14, y), (17, y)], fill="black")
        draw.text((19, y - 5), f"{value:.{decimals}f}", fill="black")
    return bar


def render(images: Sequence[np.ndarray], maps: np.ndarray, *, titles: Sequence[str], scale: int = 4) -> bytes:
    """One row per image: the input, the map over it (colours span that image's min to max gate value),
    and a colour bar labelled with those values. PNG bytes."""
    from PIL import Image, ImageDraw

    rows = []
    for image, amap, title in zip(images, maps, titles):
        h, w = image.shape[:2]
        big = Image.fromarray(image).resize((w * scale, h * scale), Image.NEAREST)
        low, high = float(amap.min()), float(amap.max())
        norm = (amap - low) / ((high - low) or 1.0)
        heat = Image.fromarray(_heat(norm)).resize(big.size, Image.BILINEAR)
        overlay = Image.blend(big.convert("RGB"), heat, 0.55)
        bar = _colour_bar(big.height - 12, low, high)
        row = Image.new("RGB", (max(big.width * 2 + 8 + bar.width, 6 * len(title) + 4), big.height + 18), "white")
        row.paste(big, (0, 18))
        row.paste(overlay, (big.width + 8, 18))
        row.paste(bar, (big.width * 2 + 12, 18))
        ImageDraw.Draw(row).text((2, 2), title, fill="black")
        rows.append(row)
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()
