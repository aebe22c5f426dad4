"""The four CBAM variants of ``shared/VARIANTS.md``, registered by name.

One file per variant; each module's attribute names are the seed's, so the seed's checkpoints load
with ``strict=True``.
"""

from __future__ import annotations

from torch import nn

from ..registry import VARIANTS
from .deep_spatial import DeepSpatialCBAM
from .dual_bn import DualBNCBAM
from .original import OriginalCBAM
from .parallel import ParallelCBAM

__all__ = ["DeepSpatialCBAM", "DualBNCBAM", "OriginalCBAM", "ParallelCBAM", "create_cbam", "list_variants"]


@VARIANTS.register("original", description="the paper's CBAM: shared MLP, channel then spatial")
def _original(channels: int, *, ratio: int = 16, kernel_size: int = 7) -> nn.Module:
    return OriginalCBAM(channels, ratio=ratio, kernel_size=kernel_size)


@VARIANTS.register("dual_bn", description="independent avg/max MLP branches with BatchNorm")
def _dual_bn(channels: int, *, ratio: int = 16, kernel_size: int = 7) -> nn.Module:
    return DualBNCBAM(channels, ratio=ratio, kernel_size=kernel_size)


@VARIANTS.register("deep_spatial", description="two-conv spatial attention with BatchNorm and a residual")
def _deep_spatial(channels: int, *, ratio: int = 16, kernel_size: int = 7) -> nn.Module:
    return DeepSpatialCBAM(channels, ratio=ratio, kernel_size=kernel_size)


@VARIANTS.register("parallel", description="dynamic MLP width, He init, x + ca(x) + sa(x)")
def _parallel(channels: int, *, ratio: int = 16, kernel_size: int = 7) -> nn.Module:
    return ParallelCBAM(channels, ratio=ratio, kernel_size=kernel_size)


def list_variants(pattern: str = "*") -> list[str]:
    """Registered variant names matching a glob pattern, in registration order."""
    return VARIANTS.names(pattern)


def create_cbam(variant: str, channels: int, *, ratio: int = 16, kernel_size: int = 7) -> nn.Module:
    """Build one attention module; unknown ``variant`` raises ``ValueError`` listing valid ones."""
    return VARIANTS.get(variant).builder(channels, ratio=ratio, kernel_size=kernel_size)
