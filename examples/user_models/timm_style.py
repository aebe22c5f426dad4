"""CBAM written the way timm writes it (timm/layers/cbam.py): 1x1-conv MLP with biases on
``mean``/``amax`` pooled maps, and a conv + BatchNorm spatial gate over [mean, max], inside a
small plain-conv (VGG-like) classifier that returns two outputs: logits and an embedding.

``build_resnet`` is closer still to ``timm.create_model('resnet18', attn_layer='cbam')``: a ResNet
whose blocks apply CBAM after their last BatchNorm, and whose gates' conv is timm's ``ConvNormAct``
with ``BatchNormAct2d`` (a ``BatchNorm2d`` subclass that runs BatchNorm, dropout and activation in
its own forward, timm/layers/norm_act.py).

    cbam-export --model examples/user_models/timm_style.py:build_net --input-shape 1x3x96x96
    cbam-export --model examples/user_models/timm_style.py:build_resnet --input-shape 1x3x64x64 --dynamic all
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


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


class BatchNormAct2d(nn.BatchNorm2d):
    """timm's BatchNorm + activation in one module: its forward calls ``F.batch_norm`` itself."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 apply_act=True, act_layer=nn.ReLU, inplace=True, drop_layer=None):
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine,
                         track_running_stats=track_running_stats)
        self.drop = drop_layer() if drop_layer is not None else nn.Identity()
        self.act = act_layer(inplace=inplace) if apply_act else nn.Identity()

    def forward(self, x):
        bn_training = self.training or (self.running_mean is None and self.running_var is None)
        x = F.batch_norm(x, self.running_mean if not self.training or self.track_running_stats else None,
                         self.running_var if not self.training or self.track_running_stats else None,
                         self.weight, self.bias, bn_training, 0.0 if self.momentum is None else self.momentum,
                         self.eps)
        return self.act(self.drop(x))


class TimmConvNormAct(nn.Module):
    """timm's ConvNormAct: the norm is a BatchNormAct2d named ``bn`` (the activation lives inside it)."""

    def __init__(self, in_channels, out_channels, kernel_size=1, stride=1, apply_act=True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=False)
        self.bn = BatchNormAct2d(out_channels, apply_act=apply_act)

    def forward(self, x):
        return self.bn(self.conv(x))


class TimmSpatialAttn(nn.Module):
    def __init__(self, kernel_size=7):
        super().__init__()
        self.conv = TimmConvNormAct(2, 1, kernel_size, apply_act=False)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        x_attn = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * self.gate(self.conv(x_attn))


class TimmCbam(nn.Module):
    def __init__(self, channels, rd_ratio=1.0 / 16, spatial_kernel_size=7):
        super().__init__()
        self.channel = ChannelAttn(channels, rd_ratio=rd_ratio)
        self.spatial = TimmSpatialAttn(spatial_kernel_size)

    def forward(self, x):
        return self.spatial(self.channel(x))


class BasicBlock(nn.Module):
    """timm's resnet BasicBlock with ``attn_layer``: attention after bn2, before the shortcut."""

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = TimmCbam(planes)
        self.act2 = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.se(self.bn2(self.conv2(x)))
        return self.act2(x + shortcut)


class TimmResNet(nn.Module):
    def __init__(self, num_classes=10, width=16, layers=(1, 1, 1, 1)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages, chs = [], width
        for i, n in enumerate(layers):
            out = width * 2 ** i
            stages.append(nn.Sequential(*[BasicBlock(chs if j == 0 else out, out, 2 if i and j == 0 else 1)
                                          for j in range(n)]))
            chs = out
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(chs, num_classes)

    def forward(self, x):
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean((2, 3)))


def build_resnet(num_classes=10, width=16):
    return TimmResNet(num_classes=num_classes, width=width)
