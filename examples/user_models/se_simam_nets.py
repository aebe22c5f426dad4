"""Squeeze-and-Excitation and SimAM written the way their papers' public code writes them.

- ``build_se_net``: SE-ResNet blocks as in moskomule/senet.pytorch (``SELayer``:
  ``AdaptiveAvgPool2d(1)``, Linear-ReLU-Linear-Sigmoid without bias, ``x * y.expand_as(x)``), with an
  SE-Inception-style ``1 + sigmoid`` residual gate in the last block, as some forks write it.
- ``build_simam_net``: SimAM (ZjjConan/SimAM ``simam_module``): parameter free,
  ``x * sigmoid(y)`` where ``y`` is the energy computed from x's mean and variance.

    cbam-export --model examples/user_models/se_simam_nets.py:build_se_net --input-shape 1x3x64x64 --dynamic all
    cbam-export --model examples/user_models/se_simam_nets.py:build_simam_net --input-shape 1x3x64x64 --dynamic all
"""

import torch
import torch.nn as nn


class SELayer(nn.Module):
    def __init__(self, channel, reduction=16, residual=False):
        super(SELayer, self).__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channel, channel // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(channel // reduction, channel, bias=False),
            nn.Sigmoid())
        self.residual = residual

    def forward(self, x):
        b, c, _, _ = x.size()
        y = self.avg_pool(x).view(b, c)
        y = self.fc(y).view(b, c, 1, 1)
        if self.residual:
            return x * (1 + y.expand_as(x))
        return x * y.expand_as(x)


class simam_module(torch.nn.Module):
    def __init__(self, channels=None, e_lambda=1e-4):
        super(simam_module, self).__init__()
        self.activaton = nn.Sigmoid()
        self.e_lambda = e_lambda

    def forward(self, x):
        b, c, h, w = x.size()
        n = w * h - 1
        x_minus_mu_square = (x - x.mean(dim=[2, 3], keepdim=True)).pow(2)
        y = x_minus_mu_square / (4 * (x_minus_mu_square.sum(dim=[2, 3], keepdim=True) / n + self.e_lambda)) + 0.5
        return x * self.activaton(y)


class Block(nn.Module):
    def __init__(self, inplanes, planes, stride, attention):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.attention = attention
        self.relu = nn.ReLU(inplace=True)
        self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.attention(self.bn2(self.conv2(out)))
        return self.relu(out + self.downsample(x))


class Net(nn.Module):
    def __init__(self, attention, num_classes=10, widths=(16, 32, 64)):
        super().__init__()
        blocks, inplanes = [], 3
        for i, planes in enumerate(widths):
            blocks.append(Block(inplanes, planes, 2, attention(planes, i)))
            inplanes = planes
        self.features = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes)

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.fc(torch.flatten(x, 1))


def build_se_net(num_classes=10):
    return Net(lambda c, i: SELayer(c, reduction=4, residual=i == 2), num_classes)


def build_simam_net(num_classes=10):
    return Net(lambda c, i: simam_module(c), num_classes)
