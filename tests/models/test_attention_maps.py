"""Attention maps for every block with a spatial gate: CBAM, Coordinate Attention (the product of its
H x 1 and 1 x W gates), BAM-style (1 + sigmoid of a C x H x W attention), SimAM; none for blocks that
only gate channels (SE, ECA, hard-sigmoid SE). The picture carries a colour bar of the gate values."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cbam_deploy.attention_maps import render, spatial_gates
from cbam_deploy.models.user_model import UserModelSpec, build_user_model
from tests.conftest import EXAMPLES, randomize_batchnorm


def example(factory: str, **kwargs) -> nn.Module:
    model = build_user_model(UserModelSpec(f"{EXAMPLES / factory}", kwargs=kwargs, seed=0)).model
    return randomize_batchnorm(model, seed=3).eval()


@pytest.mark.parametrize("product", [False, True], ids=["in_turn", "product"])
def test_coordinate_attention_map_is_the_mean_of_a_h_times_a_w(product):
    model = example("coordatt_yolo.py:build_net", product=product)
    x = torch.randn(2, 3, 64, 96)
    maps = spatial_gates(model, x)
    assert list(maps) == ["ca3", "ca4", "ca5"]
    # By hand, from the module's own layers: the map must be mean_c(a_h * a_w) at ca3's input.
    ca, captured = model.ca3, {}
    handle = ca.register_forward_pre_hook(lambda _m, args: captured.setdefault("x", args[0]))
    with torch.no_grad():
        model(x)
        handle.remove()
        feat = captured["x"]
        h = feat.shape[2]
        y = ca.act(ca.bn1(ca.conv1(torch.cat([feat.mean(3, keepdim=True), feat.mean(2, keepdim=True).permute(0, 1, 3, 2)], 2))))
        a_h = ca.conv_h(y[:, :, :h]).sigmoid()
        a_w = ca.conv_w(y[:, :, h:].permute(0, 1, 3, 2)).sigmoid()
    np.testing.assert_allclose(maps["ca3"], (a_h * a_w).mean(1).numpy(), rtol=1e-5, atol=1e-6)
    assert maps["ca3"].shape == (2, 8, 12)


class BAM(nn.Module):
    """BAM as its public code writes it: att = 1 + sigmoid(channel_att(x) * spatial_att(x)), both expanded."""

    def __init__(self, c: int):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(c, c // 4), nn.ReLU(), nn.Linear(c // 4, c))
        self.spatial = nn.Sequential(nn.Conv2d(c, c // 4, 1), nn.ReLU(), nn.Conv2d(c // 4, c // 4, 3, padding=2, dilation=2),
                                     nn.ReLU(), nn.Conv2d(c // 4, 1, 1))

    def forward(self, x):
        channel = self.fc(x.mean((2, 3))).unsqueeze(2).unsqueeze(3).expand_as(x)
        spatial = self.spatial(x).expand_as(x)
        att = 1 + torch.sigmoid(channel * spatial)
        return att * x


def test_bam_style_map_and_channel_only_blocks_have_none():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), BAM(16)).eval()
    x = torch.randn(1, 3, 20, 24)
    maps = spatial_gates(model, x)
    assert list(maps) == ["1"] and maps["1"].shape == (1, 20, 24)
    assert 1 <= maps["1"].min() and maps["1"].max() <= 2 and np.ptp(maps["1"]) > 0
    for factory, kwargs in [("eca_resnet.py:build_net", {}), ("se_simam_nets.py:build_se_net", {}),
                            ("mobilenetv3_se.py:build_net", {}), ("mobilenetv3_se.py:build_net", {"torchvision": True})]:
        assert spatial_gates(example(factory, **kwargs), torch.randn(1, 3, 64, 64)) == {}, factory


def test_simam_and_cbam_styles_have_one_map_per_block():
    simam = spatial_gates(example("se_simam_nets.py:build_simam_net"), torch.randn(1, 3, 64, 64))
    assert [m.shape for m in simam.values()] == [(1, 32, 32), (1, 16, 16), (1, 8, 8)]
    authors = example("cbam_authors/model_resnet.py:ResidualNet", network_type="CIFAR10", depth=18, num_classes=10,
                      att_type="CBAM", width=16)
    maps = spatial_gates(authors, torch.randn(1, 3, 32, 32))
    assert list(maps) == [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)]  # spatial gates only


def test_picture_has_a_colour_bar_labelled_with_the_gate_values():
    images = [np.full((16, 16, 3), 128, np.uint8)]
    amap = np.linspace(0.25, 0.75, 16 * 16, dtype=np.float32).reshape(1, 16, 16)
    picture = np.asarray(Image.open(io.BytesIO(render(images, amap, titles=["x"], scale=4))).convert("RGB"))
    bar_x = 64 * 2 + 12 + 2 + 6  # after the image and the overlay: the middle of the bar
    top, bottom = picture[18 + 6 + 1, bar_x], picture[18 + 64 - 12 + 6 - 2, bar_x]
    assert top[0] > 200 and top[2] < 30  # red: the highest gate value
    assert bottom[2] > 100 and bottom[0] < 30  # dark blue: the lowest
    labels = picture[18:18 + 64, bar_x + 10:]
    assert (labels < 100).any()  # the value labels are drawn
