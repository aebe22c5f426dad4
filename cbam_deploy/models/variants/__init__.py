"""The four CBAM variants of ``docs/variants.md``, registered by name.

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


# Each class takes (channels, ratio=16, kernel_size=7): the classes are the builders.
for _name, _cls, _description in (
    ("original", OriginalCBAM, "the paper's CBAM: shared MLP, channel then spatial"),
    ("dual_bn", DualBNCBAM, "independent avg/max MLP branches with BatchNorm"),
    ("deep_spatial", DeepSpatialCBAM, "two-conv spatial attention with BatchNorm and a residual"),
    ("parallel", ParallelCBAM, "dynamic MLP width, He init, x + ca(x) + sa(x)"),
):
    VARIANTS.register(_name, description=_description)(_cls)


def list_variants(pattern: str = "*") -> list[str]:
    """Registered variant names matching a glob pattern, in registration order."""
    return VARIANTS.names(pattern)


def create_cbam(variant: str, channels: int, *, ratio: int = 16, kernel_size: int = 7) -> nn.Module:
    """Build one attention module; unknown ``variant`` raises ``ValueError`` listing valid ones."""
    return VARIANTS.get(variant).builder(channels, ratio=ratio, kernel_size=kernel_size)
