"""BatchNorm folding: exact (in float64), complete, on a copy, and honest about what it could not fold."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cbam_deploy import create_model, fold_batchnorms
from cbam_deploy.errors import UsageError
from tests.conftest import VARIANTS, randomize_batchnorm


def scaled_error(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def n_batchnorms(m):
    return sum(isinstance(x, nn.modules.batchnorm._BatchNorm) for x in m.modules())


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("arch", ["cbam", "resnet18"])
def test_folded_model_has_no_batchnorm_and_matches_fp32(variant, arch):
    model = randomize_batchnorm(create_model(arch, variant, channels=64)).eval()
    folded, report = fold_batchnorms(model)
    assert n_batchnorms(folded) == 0
    assert not report.unfolded
    assert len(report.folded) == n_batchnorms(model)
    x = torch.randn(2, 64 if arch == "cbam" else 3, 32, 32)
    with torch.no_grad():
        assert scaled_error(folded(x), model(x)) < 1e-5


@pytest.mark.parametrize("variant", VARIANTS)
def test_resnet50_fold_is_exact_in_float64(variant):
    # In float32, random-init ResNet-50 + parallel is ill-conditioned (each block scales by up to
    # 3x): eager itself is 4e-4 away from float64. Folding's arithmetic is checked in float64.
    model = randomize_batchnorm(create_model("resnet50", variant)).eval().double()
    folded, report = fold_batchnorms(model)
    assert n_batchnorms(folded) == 0 and not report.unfolded
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        assert scaled_error(folded(x), model(x)) < 1e-10


@pytest.mark.parametrize("variant", ["original", "parallel"])
def test_shared_mlp_batchnorms_are_folded(variant):
    # original has no BN in its MLP; parallel's shared fc has two, applied to both pools.
    model = randomize_batchnorm(create_model("cbam", variant, channels=64)).eval()
    _, report = fold_batchnorms(model)
    pairs = dict((bn, producer) for producer, bn in report.folded)
    if variant == "parallel":
        assert pairs["ca.fc.1"] == "ca.fc.0" and pairs["ca.fc.4"] == "ca.fc.3"


def test_user_model_is_untouched():
    model = randomize_batchnorm(create_model("resnet18", "dual_bn")).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fold_batchnorms(model)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert n_batchnorms(model) > 0


def test_bias_is_created_where_the_conv_had_none():
    model = randomize_batchnorm(create_model("cbam", "dual_bn", channels=64)).eval()
    assert model.channelattention.fc_avg[0].bias is None
    folded, _ = fold_batchnorms(model)
    assert folded.channelattention.fc_avg[0].bias is not None


def test_training_mode_is_refused():
    with pytest.raises(UsageError, match=r"training mode .* call model.eval\(\) first"):
        fold_batchnorms(create_model("resnet18", "original").train())


class Generic(nn.Module):
    """Linear+BatchNorm1d, conv -> Identity -> BN, a conv also used without its BN, a shared block."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.noop = nn.Identity()
        self.bn = nn.BatchNorm2d(8)
        self.shared = nn.Sequential(nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8))
        self.reused = nn.Conv2d(8, 8, 1)
        self.bn_reused = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 4)
        self.bn1d = nn.BatchNorm1d(4)

    def forward(self, x):
        x = self.bn(self.noop(self.conv(x)))
        x = self.shared(x) + self.shared(x * 2)
        r = self.reused(x)
        x = self.bn_reused(r) + r  # the conv output is used without the BN too: must not fold
        return self.bn1d(self.fc(x.mean((2, 3))))


def test_generic_pairs_found_from_the_graph():
    model = randomize_batchnorm(Generic()).eval()
    folded, report = fold_batchnorms(model)
    pairs = {bn: producer for producer, bn in report.folded}
    assert pairs == {"bn": "conv", "shared.1": "shared.0", "bn1d": "fc"}
    assert "bn_reused" in report.unfolded and "also used without" in report.unfolded["bn_reused"]
    x = torch.randn(3, 3, 10, 10)
    with torch.no_grad():
        assert scaled_error(folded(x), model(x)) < 1e-5
