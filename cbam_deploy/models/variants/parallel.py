"""Improvements 3-5 of the seed: dynamic MLP width, He initialisation, parallel fusion.

``forward`` is ``x + ca(x) + sa(x)`` = ``x * (1 + Mc + Ms)``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import VARIANTS
from ._checks import check_channels, check_kernel_size, check_ratio
from .deep_spatial import spatial_conv_stack
from .original import spatial_descriptor

MIN_HIDDEN = 4


def hidden_width(in_channels: int, ratio: int = 16) -> int:
    """The seed's ``get_ratio``: ``max(C // ratio, 4)`` (a width, despite the seed's name)."""
    return max(in_channels // ratio, MIN_HIDDEN)


def init_weights(m: nn.Module) -> None:
    """He (fan_out, relu) for convs, zero biases; BatchNorm weight 1, bias 0 (seed's init_weights)."""
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if m.bias is not None:
            nn.init.constant_(m.bias, 0)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.constant_(m.weight, 1)
        nn.init.constant_(m.bias, 0)


class ParallelChannelAttention(nn.Module):
    """``x * sigmoid(fc(avgpool(x)) + fc(maxpool(x)))``, shared MLP with BatchNorm, width max(C//r, 4)."""

    def __init__(self, in_channels: int, ratio: int = 16) -> None:
        super().__init__()
        check_channels("parallel ChannelAttention", in_channels)
        check_ratio("parallel ChannelAttention", in_channels, ratio, min_hidden=MIN_HIDDEN)
        hidden = hidden_width(in_channels, ratio)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.max_pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, in_channels, 1, bias=False),
            nn.BatchNorm2d(in_channels),
        )
        self.sigmoid = nn.Sigmoid()
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.sigmoid(self.fc(self.avg_pool(x)) + self.fc(self.max_pool(x)))
        return x * weight


class ParallelSpatialAttention(nn.Module):
    """``x * sigmoid(conv(cat[mean_c(x), max_c(x)]))``, no residual."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        check_kernel_size("parallel SpatialAttention", kernel_size, None)
        self.conv = spatial_conv_stack(kernel_size, inplace_relu=False)
        self.sigmoid = nn.Sigmoid()
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.sigmoid(self.conv(spatial_descriptor(x)))


@VARIANTS.register("parallel", description="dynamic MLP width, He init, x + ca(x) + sa(x)")
class ParallelCBAM(nn.Module):
    """Parallel fusion with a residual: ``x + ca(x) + sa(x)``."""

    def __init__(self, in_channels: int, ratio: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.ca = ParallelChannelAttention(in_channels, ratio=ratio)
        self.sa = ParallelSpatialAttention(kernel_size)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ca(x) + self.sa(x)
