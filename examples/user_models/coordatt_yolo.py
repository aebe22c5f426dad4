"""A small YOLO-style detector with Coordinate Attention written the way the paper's public code
writes it (houqb/CoordAttention ``coordatt.py``): ``nn.AdaptiveAvgPool2d((None, 1))`` and
``((1, None))`` pooling, ``h_swish``/``h_sigmoid`` built from ReLU6, ``torch.split(y, [h, w])`` and
``identity * a_w * a_h``. The backbone is Ultralytics-like (Conv = Conv2d + BatchNorm + SiLU, stride
8/16/32 levels) and the head concatenates every level's (box, class) predictions.

``build_net(product=True)`` writes the gate as YOLO forks often do: ``x * (a_h * a_w)``.

    cbam-export --model examples/user_models/coordatt_yolo.py:build_net --input-shape 1x3x128x128 --dynamic all
"""

import torch
import torch.nn as nn


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


class CoordAtt(nn.Module):
    def __init__(self, inp, oup, reduction=32, product=False):
        super(CoordAtt, self).__init__()
        self.pool_h = nn.AdaptiveAvgPool2d((None, 1))
        self.pool_w = nn.AdaptiveAvgPool2d((1, None))
        mip = max(8, inp // reduction)
        self.conv1 = nn.Conv2d(inp, mip, kernel_size=1, stride=1, padding=0)
        self.bn1 = nn.BatchNorm2d(mip)
        self.act = h_swish()
        self.conv_h = nn.Conv2d(mip, oup, kernel_size=1, stride=1, padding=0)
        self.conv_w = nn.Conv2d(mip, oup, kernel_size=1, stride=1, padding=0)
        self.product = product

    def forward(self, x):
        identity = x
        n, c, h, w = x.size()
        x_h = self.pool_h(x)
        x_w = self.pool_w(x).permute(0, 1, 3, 2)
        y = torch.cat([x_h, x_w], dim=2)
        y = self.conv1(y)
        y = self.bn1(y)
        y = self.act(y)
        x_h, x_w = torch.split(y, [h, w], dim=2)
        x_w = x_w.permute(0, 1, 3, 2)
        a_h = self.conv_h(x_h).sigmoid()
        a_w = self.conv_w(x_w).sigmoid()
        if self.product:
            return identity * (a_h * a_w)
        out = identity * a_w * a_h
        return out


class Conv(nn.Module):
    def __init__(self, c1, c2, k=1, s=1):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Detect(nn.Module):
    def __init__(self, nc, ch):
        super().__init__()
        self.no = nc + 4
        self.m = nn.ModuleList(nn.Conv2d(c, self.no, 1) for c in ch)

    def forward(self, xs):
        n = xs[0].shape[0]
        out = torch.cat([m(x).view(n, self.no, -1) for m, x in zip(self.m, xs)], 2)
        box, cls = out.split((4, self.no - 4), 1)
        return torch.cat((box, cls.sigmoid()), 1)


class CoordAttYolo(nn.Module):
    def __init__(self, nc=3, width=16, product=False):
        super().__init__()
        w = width
        self.stem = nn.Sequential(Conv(3, w, 3, 2), Conv(w, 2 * w, 3, 2), Conv(2 * w, 2 * w, 3, 2))
        self.p4 = Conv(2 * w, 4 * w, 3, 2)
        self.p5 = Conv(4 * w, 4 * w, 3, 2)
        self.ca3 = CoordAtt(2 * w, 2 * w, product=product)
        self.ca4 = CoordAtt(4 * w, 4 * w, product=product)
        self.ca5 = CoordAtt(4 * w, 4 * w, product=product)
        self.detect = Detect(nc, (2 * w, 4 * w, 4 * w))

    def forward(self, x):
        p3 = self.ca3(self.stem(x))
        p4 = self.ca4(self.p4(p3))
        p5 = self.ca5(self.p5(p4))
        return self.detect([p3, p4, p5])


def build_net(num_classes=3, product=False):
    return CoordAttYolo(num_classes, product=product)
