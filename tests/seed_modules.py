"""The seed document's module code (a blog post, "CBAM improvement ideas"), with line breaks restored and nothing else changed
except class names (each improvement reuses the names ChannelAttention/SpatialAttention/CBAM).

Checkpoints users bring were saved from modules like these: our variants must load them strictly
and compute the same outputs.
"""

import torch
import torch.nn as nn


# --- original (the paper's code as given in the seed) ---
class ChannelAttention(nn.Module):
    def __init__(self, in_channels, ratio=16):
        super(ChannelAttention, self).__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.max_pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Sequential(nn.Conv2d(in_channels, in_channels // ratio, 1, bias=False), nn.ReLU(inplace=True),
                                nn.Conv2d(in_channels // ratio, in_channels, 1, bias=False))
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        avg_out = self.fc(self.avg_pool(x))
        max_out = self.fc(self.max_pool(x))
        out = avg_out + max_out
        out = self.sigmoid(out)
        return out * x


class SpatialAttention(nn.Module):
    def __init__(self, kernel_size=7):
        super(SpatialAttention, self).__init__()
        assert kernel_size in (3, 7), 'kernel size must be 3 or 7'
        padding = 3 if kernel_size == 7 else 1
        self.conv1 = nn.Conv2d(2, 1, kernel_size, padding=padding, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        avg_out = torch.mean(x, dim=1, keepdim=True)
        max_out, _ = torch.max(x, dim=1, keepdim=True)
        out = torch.cat([avg_out, max_out], dim=1)
        out = self.sigmoid(self.conv1(out))
        return out * x


class CBAM(nn.Module):
    def __init__(self, in_channels, ratio=16, kernel_size=3):
        super(CBAM, self).__init__()
        self.channelattention = ChannelAttention(in_channels, ratio=ratio)
        self.spatialattention = SpatialAttention(kernel_size=kernel_size)

    def forward(self, x):
        x = self.channelattention(x)
        x = self.spatialattention(x)
        return x


# --- improvement 1: independent branches with BatchNorm ---
class ChannelAttention1(nn.Module):
    def __init__(self, in_channels, ratio=16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.max_pool = nn.AdaptiveMaxPool2d(1)
        self.fc_avg = nn.Sequential(nn.Conv2d(in_channels, in_channels // ratio, 1, bias=False),
                                    nn.BatchNorm2d(in_channels // ratio), nn.ReLU(inplace=True),
                                    nn.Conv2d(in_channels // ratio, in_channels, 1, bias=False),
                                    nn.BatchNorm2d(in_channels))
        self.fc_max = nn.Sequential(nn.Conv2d(in_channels, in_channels // ratio, 1, bias=False),
                                    nn.BatchNorm2d(in_channels // ratio), nn.ReLU(inplace=True),
                                    nn.Conv2d(in_channels // ratio, in_channels, 1, bias=False),
                                    nn.BatchNorm2d(in_channels))
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        avg_out = self.fc_avg(self.avg_pool(x))
        max_out = self.fc_max(self.max_pool(x))
        out = self.sigmoid(avg_out + max_out)
        return x * out


class CBAM1(nn.Module):  # the seed keeps the original wrapper and spatial attention
    def __init__(self, in_channels, ratio=16, kernel_size=3):
        super().__init__()
        self.channelattention = ChannelAttention1(in_channels, ratio=ratio)
        self.spatialattention = SpatialAttention(kernel_size=kernel_size)

    def forward(self, x):
        x = self.channelattention(x)
        x = self.spatialattention(x)
        return x


# --- improvement 2: deeper spatial attention ---
class SpatialAttention2(nn.Module):
    def __init__(self, kernel_size=7):
        super().__init__()
        padding = kernel_size // 2
        self.conv = nn.Sequential(nn.Conv2d(2, 32, kernel_size, padding=padding, bias=False), nn.BatchNorm2d(32),
                                  nn.ReLU(inplace=True), nn.Conv2d(32, 1, kernel_size, padding=padding, bias=False),
                                  nn.BatchNorm2d(1))
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        avg_out = torch.mean(x, dim=1, keepdim=True)
        max_out, _ = torch.max(x, dim=1, keepdim=True)
        cat = torch.cat([avg_out, max_out], dim=1)
        out = self.conv(cat) + cat.mean(dim=1, keepdim=True)
        return x * self.sigmoid(out)


class CBAM2(nn.Module):
    def __init__(self, in_channels, ratio=16, kernel_size=3):
        super().__init__()
        self.channelattention = ChannelAttention(in_channels, ratio=ratio)
        self.spatialattention = SpatialAttention2(kernel_size=kernel_size)

    def forward(self, x):
        x = self.channelattention(x)
        x = self.spatialattention(x)
        return x


# --- improvements 3-5 ---
def get_ratio(in_channels, min_ratio=16):
    return max(in_channels // min_ratio, 4)


def init_weights(m):
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
        if m.bias is not None:
            nn.init.constant_(m.bias, 0)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.constant_(m.weight, 1)
        nn.init.constant_(m.bias, 0)


class ChannelAttention3(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        ratio = get_ratio(in_channels)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.max_pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Sequential(nn.Conv2d(in_channels, ratio, 1, bias=False), nn.BatchNorm2d(ratio), nn.ReLU(),
                                nn.Conv2d(ratio, in_channels, 1, bias=False), nn.BatchNorm2d(in_channels))
        self.sigmoid = nn.Sigmoid()
        self.apply(init_weights)

    def forward(self, x):
        avg_out = self.fc(self.avg_pool(x))
        max_out = self.fc(self.max_pool(x))
        weight = self.sigmoid(avg_out + max_out)
        return x * weight


class SpatialAttention3(nn.Module):
    def __init__(self, kernel_size=7):
        super().__init__()
        padding = kernel_size // 2
        self.conv = nn.Sequential(nn.Conv2d(2, 32, kernel_size, padding=padding, bias=False), nn.BatchNorm2d(32),
                                  nn.ReLU(), nn.Conv2d(32, 1, kernel_size, padding=padding, bias=False),
                                  nn.BatchNorm2d(1))
        self.sigmoid = nn.Sigmoid()
        self.apply(init_weights)

    def forward(self, x):
        avg_out = torch.mean(x, dim=1, keepdim=True)
        max_out, _ = torch.max(x, dim=1, keepdim=True)
        cat = torch.cat([avg_out, max_out], dim=1)
        weight = self.sigmoid(self.conv(cat))
        return x * weight


class CBAM3(nn.Module):
    def __init__(self, in_channels, kernel_size=7):
        super().__init__()
        self.ca = ChannelAttention3(in_channels)
        self.sa = SpatialAttention3(kernel_size)
        self.apply(init_weights)

    def forward(self, x):
        ca_out = self.ca(x)
        sa_out = self.sa(x)
        return x + ca_out + sa_out


SEED_CBAM = {"original": CBAM, "dual_bn": CBAM1, "deep_spatial": CBAM2, "parallel": CBAM3}


def build_seed_cbam(variant: str, channels: int, kernel_size: int = 7) -> nn.Module:
    cls = SEED_CBAM[variant]
    return cls(channels, kernel_size=kernel_size)
