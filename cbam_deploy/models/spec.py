"""A buildable description of a built-in model: host + variant + config + where its weights come from.

Weights are ``"reference"`` (the checkpoint shipped for the reference task), ``"random"`` (seeded
initialisation, for benchmarks and tests), or a checkpoint path. The same spec, stored in an
exported model's metadata, rebuilds the eager model later for validation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import LoadReport, file_sha256, load_checkpoint, read_checkpoint
from ..errors import UsageError
from .hosts import create_model, host_defaults

REFERENCE_DIR = Path(__file__).resolve().parent.parent / "reference" / "checkpoints"
CONFIG_KEY = "cbam_deploy"  # our checkpoints carry their config under this key


def reference_checkpoint(variant: str | None) -> Path:
    """Path of the shipped reference checkpoint for ``variant`` on the reference host."""
    path = REFERENCE_DIR / f"resnet_mini_{variant or 'none'}.pt"
    if not path.is_file():
        shipped = sorted(p.stem.removeprefix("resnet_mini_") for p in REFERENCE_DIR.glob("resnet_mini_*.pt"))
        raise UsageError(f"no reference checkpoint for variant {variant or 'none'!r}; shipped: {', '.join(shipped) or 'none'}")
    return path


@dataclass
class ModelSpec:
    arch: str
    variant: str | None
    num_classes: int | None = None
    ratio: int | None = None
    kernel_size: int | None = None
    channels: int | None = None
    weights: str = "random"  # "reference" | "random" | a checkpoint path
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BuiltModel:
    model: nn.Module
    spec: ModelSpec
    checkpoint_path: str | None
    checkpoint_sha256: str | None
    config: dict[str, Any]  # the checkpoint's own cbam_deploy config, if any
    load_report: LoadReport | None


def _first(*values: Any) -> Any:
    """The first value that is not None (``a or b`` would read 0 as "not given")."""
    return next((v for v in values if v is not None), None)


def build_model(spec: ModelSpec) -> BuiltModel:
    """Build the eval-mode model a spec describes and load its weights (strictly).

    Values left ``None`` in the spec come from the checkpoint's own config when it has one
    (our reference checkpoints do), else from the defaults (ratio 16, kernel 7, host's classes).
    """
    path = None
    config: dict[str, Any] = {}
    if spec.weights == "reference":
        if spec.arch != "resnet_mini":
            raise UsageError(f"reference weights exist only for host 'resnet_mini', not {spec.arch!r}; "
                             "pass --weights PATH or --weights random")
        path = reference_checkpoint(spec.variant)
    elif spec.weights != "random":
        path = Path(spec.weights)
    if path is not None:
        _, extra = read_checkpoint(path)
        config = dict(extra.get(CONFIG_KEY) or {})
        if config.get("arch") not in (None, spec.arch):
            raise UsageError(f"checkpoint {str(path)!r} was trained for host {config['arch']!r}, not {spec.arch!r}")
        if config.get("variant") not in (None, spec.variant or "none"):
            raise UsageError(f"checkpoint {str(path)!r} holds variant {config['variant']!r}, not {spec.variant or 'none'!r}")
    for field_name in ("num_classes", "ratio", "kernel_size", "channels"):
        value = getattr(spec, field_name)  # 0 is a value (an invalid one here), never "not given"
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise UsageError(f"{field_name} must be a positive integer, got {value!r}")
    resolved = ModelSpec(
        arch=spec.arch, variant=spec.variant,
        num_classes=_first(spec.num_classes, config.get("num_classes"), None if spec.arch == "cbam" else 1000),
        ratio=_first(spec.ratio, config.get("ratio"), 16),
        kernel_size=_first(spec.kernel_size, config.get("kernel_size"), 7),
        channels=_first(spec.channels, host_defaults(spec.arch).input_shape[1] if spec.arch == "cbam" else None),
        weights=spec.weights, seed=spec.seed,
    )
    torch.manual_seed(resolved.seed)  # random weights are reproducible
    model = create_model(resolved.arch, resolved.variant, num_classes=_first(resolved.num_classes, 1000),
                         ratio=resolved.ratio, kernel_size=resolved.kernel_size, channels=_first(resolved.channels, 64))
    report = load_checkpoint(model, path) if path is not None else None
    model.eval()
    return BuiltModel(model, resolved, str(path) if path else None, file_sha256(path) if path else None, config, report)
