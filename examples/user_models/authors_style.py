"""A network the toolkit has never seen, with CBAM written the way the paper authors' repository
writes it (Jongchan/attention-module, MODELS/cbam.py): ``nn.Linear`` MLP with biases behind a
Flatten, BatchNorm inside the spatial gate's BasicConv, channel pooling that concatenates max
before mean, and pooling by ``F.avg_pool2d`` over the whole map.

The host is a small two-input (RGB + depth), two-output (class logits + a segmentation map)
encoder-decoder, nothing like a ResNet. Export it with:

    cbam-export --model examples/user_models/authors_style.py:build_net \
        --input-shape 1x3x64x64 --input-shape 1x1x64x64 --dynamic all
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicConv(nn.Module):
    def __init__(self, in_planes, out_planes, kernel_size, stride=1, padding=0, dilation=1, groups=1, relu=True,
                 bn=True, bias=False):
        super().__init__()
        self.out_channels = out_planes
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size=kernel_size, stride=stride, padding=padding,
                              dilation=dilation, groups=groups, bias=bias)
        self.bn = nn.BatchNorm2d(out_planes, eps=1e-5, momentum=0.01, affine=True) if bn else None
        self.relu = nn.ReLU() if relu else None

    def forward(self, x):
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.relu is not None:
            x = self.relu(x)
        return x


class Flatten(nn.Module):
    def forward(self, x):
        return x.view(x.size(0), -1)


class ChannelGate(nn.Module):
    def __init__(self, gate_channels, reduction_ratio=16, pool_types=("avg", "max")):
        super().__init__()
        self.gate_channels = gate_channels
        self.mlp = nn.Sequential(
            Flatten(),
            nn.Linear(gate_channels, gate_channels // reduction_ratio),
            nn.ReLU(),
            nn.Linear(gate_channels // reduction_ratio, gate_channels),
        )
        self.pool_types = pool_types

    def forward(self, x):
        channel_att_sum = None
        for pool_type in self.pool_types:
            if pool_type == "avg":
                avg_pool = F.avg_pool2d(x, (x.size(2), x.size(3)), stride=(x.size(2), x.size(3)))
                channel_att_raw = self.mlp(avg_pool)
            elif pool_type == "max":
                max_pool = F.max_pool2d(x, (x.size(2), x.size(3)), stride=(x.size(2), x.size(3)))
                channel_att_raw = self.mlp(max_pool)
            if channel_att_sum is None:
                channel_att_sum = channel_att_raw
            else:
                channel_att_sum = channel_att_sum + channel_att_raw
        scale = torch.sigmoid(channel_att_sum).unsqueeze(2).unsqueeze(3).expand_as(x)
        return x * scale


class ChannelPool(nn.Module):
    def forward(self, x):
        return torch.cat((torch.max(x, 1)[0].unsqueeze(1), torch.mean(x, 1).unsqueeze(1)), dim=1)


class SpatialGate(nn.Module):
    def __init__(self):
        super().__init__()
        kernel_size = 7
        self.compress = ChannelPool()
        self.spatial = BasicConv(2, 1, kernel_size, stride=1, padding=(kernel_size - 1) // 2, relu=False)

    def forward(self, x):
        x_compress = self.compress(x)
        x_out = self.spatial(x_compress)
        scale = torch.sigmoid(x_out)
        return x * scale


class CBAM(nn.Module):
    def __init__(self, gate_channels, reduction_ratio=16, pool_types=("avg", "max"), no_spatial=False):
        super().__init__()
        self.ChannelGate = ChannelGate(gate_channels, reduction_ratio, pool_types)
        self.no_spatial = no_spatial
        if not no_spatial:
            self.SpatialGate = SpatialGate()

    def forward(self, x):
        x_out = self.ChannelGate(x)
        if not self.no_spatial:
            x_out = self.SpatialGate(x_out)
        return x_out


class RGBDSegmenter(nn.Module):
    """RGB and depth stems, a fused CBAM encoder, a classifier head and an upsampling mask head."""

    def __init__(self, num_classes=4, width=32):
        super().__init__()
        self.rgb = BasicConv(3, width, 3, padding=1)
        self.depth = BasicConv(1, width // 2, 3, padding=1)
        self.fuse = BasicConv(width + width // 2, width * 2, 3, stride=2, padding=1)
        self.att1 = CBAM(width * 2, reduction_ratio=8)
        self.down = BasicConv(width * 2, width * 4, 3, stride=2, padding=1)
        self.att2 = CBAM(width * 4, reduction_ratio=16)
        self.classifier = nn.Sequential(nn.Linear(width * 4, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, num_classes))
        self.mask_head = nn.Sequential(BasicConv(width * 4, width, 3, padding=1), nn.Conv2d(width, 1, 1))

    def forward(self, rgb, depth):
        x = torch.cat([self.rgb(rgb), self.depth(depth)], dim=1)
        x = self.att1(self.fuse(x))
        x = self.att2(self.down(x))
        logits = self.classifier(x.mean(dim=(2, 3)))
        mask = F.interpolate(self.mask_head(x), size=rgb.shape[-2:], mode="bilinear", align_corners=False)
        return logits, mask


def build_net(num_classes=4, width=32):
    return RGBDSegmenter(num_classes=num_classes, width=width)
