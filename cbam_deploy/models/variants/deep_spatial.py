"""Improvement 2 of the seed: a two-conv spatial attention with BatchNorm and a residual."""

from __future__ import annotations

import torch
from torch import nn

from ..registry import VARIANTS
from ._checks import check_kernel_size
from .original import ChannelAttention, spatial_descriptor

SPATIAL_HIDDEN = 32


def spatial_conv_stack(kernel_size: int, *, inplace_relu: bool) -> nn.Sequential:
    """``conv(2->32) BN ReLU conv(32->1) BN``, padding k//2 (shared with ``parallel``)."""
    padding = kernel_size // 2
    return nn.Sequential(
        nn.Conv2d(2, SPATIAL_HIDDEN, kernel_size, padding=padding, bias=False),
        nn.BatchNorm2d(SPATIAL_HIDDEN),
        nn.ReLU(inplace=inplace_relu),
        nn.Conv2d(SPATIAL_HIDDEN, 1, kernel_size, padding=padding, bias=False),
        nn.BatchNorm2d(1),
    )


class DeepSpatialAttention(nn.Module):
    """``x * sigmoid(conv(d) + mean_c(d))`` where ``d = cat[mean_c(x), max_c(x)]``."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        check_kernel_size("deep_spatial SpatialAttention", kernel_size, None)
        self.conv = spatial_conv_stack(kernel_size, inplace_relu=True)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cat = spatial_descriptor(x)
        out = self.conv(cat) + cat.mean(dim=1, keepdim=True)
        return x * self.sigmoid(out)


@VARIANTS.register("deep_spatial", description="two-conv spatial attention with BatchNorm and a residual")
class DeepSpatialCBAM(nn.Module):
    """Sequential CBAM with the paper's channel attention and the deeper spatial attention."""

    def __init__(self, in_channels: int, ratio: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channelattention = ChannelAttention(in_channels, ratio=ratio)
        self.spatialattention = DeepSpatialAttention(kernel_size=kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatialattention(self.channelattention(x))
