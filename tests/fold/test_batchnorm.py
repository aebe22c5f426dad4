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


class PlainSubclass(nn.BatchNorm2d):
    """A BatchNorm2d subclass that adds nothing to forward: folded like a BatchNorm2d."""


def timm_style():
    from cbam_deploy.models.user_model import load_factory
    from tests.conftest import EXAMPLES

    return load_factory(f"{EXAMPLES / 'timm_style.py'}:build_resnet")


def test_batchnorm_subclasses_are_matched():
    model = randomize_batchnorm(nn.Sequential(nn.Conv2d(3, 4, 3), PlainSubclass(4), nn.ReLU())).eval()
    folded, report = fold_batchnorms(model)
    assert report.folded == [("0", "1")] and n_batchnorms(folded) == 0
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        assert scaled_error(folded(x), model(x)) < 1e-5


def test_a_subclass_with_its_own_forward_is_left_to_the_exporter_and_said_once():
    model = randomize_batchnorm(timm_style()()).eval()
    gates = [name for name, m in model.named_modules() if type(m).__name__ == "BatchNormAct2d"]
    folded, report = fold_batchnorms(model)
    assert len(gates) == 4 and sorted(report.unfolded) == sorted(gates) == sorted(report.left_to_exporter)
    assert all("BatchNormAct2d has its own forward" in why for why in report.unfolded.values())
    assert "never called" not in " ".join(report.unfolded.values())
    (note,) = report.notes()  # one line for the four, naming the reason
    assert note.startswith("4 BatchNorms not folded") and "BatchNormAct2d" in note
    assert n_batchnorms(folded) == 4  # the plain BatchNorm2d of the blocks are folded
    report.settle(graph_batchnorms=0)
    assert report.unfolded == {} and report.exporter_fused == gates
    assert report.notes() == ["4 BatchNorms fused into their Conv by the exporter instead"]
    assert report.to_dict()["fused_by_exporter"] == gates


class Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(4, 4, 1) for _ in range(3))
        self.bns = nn.ModuleList(nn.BatchNorm2d(4) for _ in range(3))

    def forward(self, x):
        for conv, bn in zip(self.convs, self.bns):
            if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
                x = bn(conv(x))
        return x


def test_untraceable_model_gives_one_message_not_one_per_batchnorm():
    _, report = fold_batchnorms(Untraceable().eval())
    assert report.unfolded == {} and len(report.left_to_exporter) == 3
    (note,) = report.notes()
    assert "torch.fx cannot trace the model" in note and "all 3 left to the exporter" in note
    report.settle(graph_batchnorms=0)
    assert "the exporter fused all 3" in report.notes()[0]


def test_timm_style_export_reports_what_the_exporter_fused(tmp_path):
    import cbam_deploy

    model = randomize_batchnorm(timm_style()(), seed=2, gamma=(0.2, 0.6)).eval()
    report = cbam_deploy.export(model, [(1, 3, 64, 64)], out=tmp_path, name="timm", dynamic="all", classifier=True)
    assert report.passed and "BatchNormalization" not in report.ops_after_simplify
    fold = report.fold.to_dict()
    assert fold["unfolded"] == {} and len(fold["fused_by_exporter"]) == 4 and fold["folded"] == n_batchnorms(model) - 4
    assert any("fused into their Conv by the exporter" in n for n in report.notes)
    assert not any("never called" in n for n in report.notes)
