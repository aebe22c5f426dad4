"""A MobileNetV3-style network with hard-sigmoid squeeze-excitation, written two ways users do:

- ``build_net()``: as the public MobileNetV3 PyTorch code writes it (d-li14/mobilenetv3.pytorch):
  ``h_sigmoid`` = ``ReLU6(x + 3) / 6``, ``h_swish`` = ``x * h_sigmoid(x)`` as the activation, and an
  SE of ``AdaptiveAvgPool2d(1)`` + Linear-ReLU-Linear-h_sigmoid, ``x * y``;
- ``build_net(torchvision=True)``: as torchvision writes it (``SqueezeExcitation`` with 1x1 convs and
  ``nn.Hardsigmoid``, ``nn.Hardswish`` activations).

Three inverted-residual blocks with SE, so three hard-sigmoid gates.

    cbam-export --model examples/user_models/mobilenetv3_se.py:build_net --input-shape 1x3x64x64 --dynamic all
"""

import torch.nn as nn
import torch.nn.functional as F


def _make_divisible(v, divisor, min_value=None):
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class h_sigmoid(nn.Module):
    def __init__(self, inplace=True):
        super(h_sigmoid, self).__init__()
        self.relu = nn.ReLU6(inplace=inplace)

    def forward(self, x):
        return self.relu(x + 3) / 6


class h_swish(nn.Module):
    def __init__(self, inplace=True):
        super(h_swish, self).__init__()
        self.sigmoid = h_sigmoid(inplace=inplace)

    def forward(self, x):
        return x * self.sigmoid(x)


class SELayer(nn.Module):
    def __init__(self, channel, reduction=4):
        super(SELayer, self).__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channel, _make_divisible(channel // reduction, 8)),
            nn.ReLU(inplace=True),
            nn.Linear(_make_divisible(channel // reduction, 8), channel),
            h_sigmoid())

    def forward(self, x):
        b, c, _, _ = x.size()
        y = self.avg_pool(x).view(b, c)
        y = self.fc(y).view(b, c, 1, 1)
        return x * y


class SqueezeExcitation(nn.Module):  # torchvision.ops.SqueezeExcitation with MobileNetV3's arguments
    def __init__(self, input_channels, squeeze_channels):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x):
        scale = self.fc2(self.activation(self.fc1(self.avgpool(x))))
        return self.scale_activation(scale) * x


class InvertedResidual(nn.Module):
    def __init__(self, inp, hidden_dim, oup, stride, torchvision=False):
        super(InvertedResidual, self).__init__()
        self.identity = stride == 1 and inp == oup
        act = nn.Hardswish() if torchvision else h_swish()
        se = (SqueezeExcitation(hidden_dim, _make_divisible(hidden_dim // 4, 8)) if torchvision
              else SELayer(hidden_dim))
        self.conv = nn.Sequential(
            nn.Conv2d(inp, hidden_dim, 1, 1, 0, bias=False), nn.BatchNorm2d(hidden_dim), act,
            nn.Conv2d(hidden_dim, hidden_dim, 3, stride, 1, groups=hidden_dim, bias=False),
            nn.BatchNorm2d(hidden_dim), se, nn.Hardswish() if torchvision else h_swish(),
            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup))

    def forward(self, x):
        return x + self.conv(x) if self.identity else self.conv(x)


class MobileNetV3Small(nn.Module):
    def __init__(self, num_classes=10, torchvision=False):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.Hardswish() if torchvision else h_swish())
        self.blocks = nn.Sequential(InvertedResidual(16, 32, 16, 2, torchvision),
                                    InvertedResidual(16, 48, 24, 2, torchvision),
                                    InvertedResidual(24, 64, 24, 1, torchvision))
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(24, num_classes)

    def forward(self, x):
        x = self.pool(self.blocks(self.stem(x)))
        return self.classifier(F.hardswish(x.flatten(1)))


def build_net(num_classes=10, torchvision=False):
    return MobileNetV3Small(num_classes, torchvision)
