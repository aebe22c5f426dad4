"""The paper's CBAM (Woo et al., ECCV 2018) as written in the seed: shared bias-free MLP,
mean-then-max spatial descriptor, channel attention then spatial attention."""

from __future__ import annotations

import torch
from torch import nn

from ..registry import VARIANTS
from ._checks import check_channels, check_kernel_size, check_ratio

ORIGINAL_KERNEL_SIZES = (3, 7)


class ChannelAttention(nn.Module):
    """``x * sigmoid(fc(avgpool(x)) + fc(maxpool(x)))`` with one MLP shared by both pools."""

    def __init__(self, in_channels: int, ratio: int = 16) -> None:
        super().__init__()
        check_channels("ChannelAttention", in_channels)
        check_ratio("ChannelAttention", in_channels, ratio)
        hidden = in_channels // ratio
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.max_pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, in_channels, 1, bias=False),
        )
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.sigmoid(self.fc(self.avg_pool(x)) + self.fc(self.max_pool(x)))
        return gate * x


class SpatialAttention(nn.Module):
    """``x * sigmoid(conv1(cat[mean_c(x), max_c(x)]))``; kernel size 3 or 7, as in the seed."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        check_kernel_size("SpatialAttention", kernel_size, ORIGINAL_KERNEL_SIZES)
        self.conv1 = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sigmoid(self.conv1(spatial_descriptor(x))) * x


def spatial_descriptor(x: torch.Tensor) -> torch.Tensor:
    """N×2×H×W: channel-wise mean first, then channel-wise max (the seed's order)."""
    avg_out = torch.mean(x, dim=1, keepdim=True)
    max_out, _ = torch.max(x, dim=1, keepdim=True)
    return torch.cat([avg_out, max_out], dim=1)


@VARIANTS.register("original", description="the paper's CBAM: shared MLP, channel then spatial")
class OriginalCBAM(nn.Module):
    """Sequential CBAM: ``spatialattention(channelattention(x))``."""

    def __init__(self, in_channels: int, ratio: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channelattention = ChannelAttention(in_channels, ratio=ratio)
        self.spatialattention = SpatialAttention(kernel_size=kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatialattention(self.channelattention(x))
