"""CBAM written the way timm writes it (timm/layers/cbam.py): 1x1-conv MLP with biases on
``mean``/``amax`` pooled maps, and a conv + BatchNorm spatial gate over [mean, max], inside a
small plain-conv (VGG-like) classifier that returns two outputs: logits and an embedding.

    cbam-export --model examples/user_models/timm_style.py:build_net --input-shape 1x3x96x96
"""

import torch
import torch.nn as nn


class ConvNormAct(nn.Module):
    def __init__(self, in_chs, out_chs, kernel_size=3, stride=1, apply_act=True):
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_chs)
        self.act = nn.ReLU(inplace=True) if apply_act else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class ChannelAttn(nn.Module):
    def __init__(self, channels, rd_ratio=1.0 / 16):
        super().__init__()
        rd_channels = max(8, int(channels * rd_ratio))
        self.fc1 = nn.Conv2d(channels, rd_channels, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(rd_channels, channels, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        x_avg = self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True))))
        x_max = self.fc2(self.act(self.fc1(x.amax((2, 3), keepdim=True))))
        return x * self.gate(x_avg + x_max)


class SpatialAttn(nn.Module):
    def __init__(self, kernel_size=7):
        super().__init__()
        self.conv = ConvNormAct(2, 1, kernel_size, apply_act=False)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        x_attn = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        x_attn = self.conv(x_attn)
        return x * self.gate(x_attn)


class CbamModule(nn.Module):
    def __init__(self, channels, rd_ratio=1.0 / 16, spatial_kernel_size=7):
        super().__init__()
        self.channel = ChannelAttn(channels, rd_ratio=rd_ratio)
        self.spatial = SpatialAttn(spatial_kernel_size)

    def forward(self, x):
        return self.spatial(self.channel(x))


class PlainCbamNet(nn.Module):
    def __init__(self, num_classes=10, embed_dim=32):
        super().__init__()
        layers, chs = [], 3
        for out in (32, 64, 128):
            layers += [ConvNormAct(chs, out, 3, stride=2), ConvNormAct(out, out), CbamModule(out)]
            chs = out
        self.features = nn.Sequential(*layers)
        self.embed = nn.Linear(chs, embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, x):
        pooled = self.features(x).mean((2, 3))
        embedding = self.embed(pooled)
        return self.head(embedding), embedding


def build_net(num_classes=10, embed_dim=32):
    return PlainCbamNet(num_classes=num_classes, embed_dim=embed_dim)
