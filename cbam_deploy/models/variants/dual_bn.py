"""Improvement 1 of the seed: independent average/max MLP branches, each with BatchNorm."""

from __future__ import annotations

import torch
from torch import nn

from ..registry import VARIANTS
from ._checks import check_channels, check_ratio
from .original import SpatialAttention


def _branch(in_channels: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden, 1, bias=False),
        nn.BatchNorm2d(hidden),
        nn.ReLU(inplace=True),
        nn.Conv2d(hidden, in_channels, 1, bias=False),
        nn.BatchNorm2d(in_channels),
    )


class DualBNChannelAttention(nn.Module):
    """``x * sigmoid(fc_avg(avgpool(x)) + fc_max(maxpool(x)))`` with two separate MLPs."""

    def __init__(self, in_channels: int, ratio: int = 16) -> None:
        super().__init__()
        check_channels("dual_bn ChannelAttention", in_channels)
        check_ratio("dual_bn ChannelAttention", in_channels, ratio)
        hidden = in_channels // ratio
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.max_pool = nn.AdaptiveMaxPool2d(1)
        self.fc_avg = _branch(in_channels, hidden)
        self.fc_max = _branch(in_channels, hidden)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.sigmoid(self.fc_avg(self.avg_pool(x)) + self.fc_max(self.max_pool(x)))
        return x * gate


@VARIANTS.register("dual_bn", description="independent avg/max MLP branches with BatchNorm")
class DualBNCBAM(nn.Module):
    """Sequential CBAM with the dual-branch channel attention and the paper's spatial attention."""

    def __init__(self, in_channels: int, ratio: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channelattention = DualBNChannelAttention(in_channels, ratio=ratio)
        self.spatialattention = SpatialAttention(kernel_size=kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatialattention(self.channelattention(x))
