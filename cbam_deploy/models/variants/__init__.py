"""The four CBAM variants of ``docs/variants.md``, registered by name.

One file per variant; each module's attribute names are the seed's, so the seed's checkpoints load
with ``strict=True``.
"""

from __future__ import annotations

from torch import nn

from ..registry import VARIANTS

# Each class registers itself beside its definition (``@VARIANTS.register``), in import order: this
# order is the registry's (original, dual_bn, deep_spatial, parallel). Each class takes
# (channels, ratio=16, kernel_size=7): the classes are the builders.
from .original import OriginalCBAM  # noqa: I001  (isort: order is the registration order)
from .dual_bn import DualBNCBAM
from .deep_spatial import DeepSpatialCBAM
from .parallel import ParallelCBAM

__all__ = ["DeepSpatialCBAM", "DualBNCBAM", "OriginalCBAM", "ParallelCBAM", "create_cbam", "list_variants"]


def list_variants(pattern: str = "*") -> list[str]:
    """Registered variant names matching a glob pattern, in registration order."""
    return VARIANTS.names(pattern)


def create_cbam(variant: str, channels: int, *, ratio: int = 16, kernel_size: int = 7) -> nn.Module:
    """Build one attention module; unknown ``variant`` raises ``ValueError`` listing valid ones."""
    return VARIANTS.get(variant).builder(channels, ratio=ratio, kernel_size=kernel_size)
