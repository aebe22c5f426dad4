"""The four variants against docs/variants.md, written independently with torch.nn.functional, and
against the seed's own module code (state_dict keys, strict loading, outputs)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cbam_deploy import create_cbam, list_variants
from cbam_deploy.errors import UsageError
from tests.conftest import VARIANTS, randomize_batchnorm
from tests.seed_modules import build_seed_cbam

C, H, W = 64, 12, 10


def bn(x, sd, prefix):
    return F.batch_norm(x, sd[prefix + "running_mean"], sd[prefix + "running_var"], sd[prefix + "weight"],
                        sd[prefix + "bias"], training=False, eps=1e-5)


def mlp(x, sd, p, with_bn):
    """conv1x1 [BN] ReLU conv1x1 [BN] on pooled features."""
    if with_bn:
        h = F.relu(bn(F.conv2d(x, sd[p + "0.weight"]), sd, p + "1."))
        return bn(F.conv2d(h, sd[p + "3.weight"]), sd, p + "4.")
    return F.conv2d(F.relu(F.conv2d(x, sd[p + "0.weight"])), sd[p + "2.weight"])


def descriptor(x):
    return torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)


def spatial_stack(d, sd, p, k):
    h = F.relu(bn(F.conv2d(d, sd[p + "0.weight"], padding=k // 2), sd, p + "1."))
    return bn(F.conv2d(h, sd[p + "3.weight"], padding=k // 2), sd, p + "4.")


def functional_reference(variant: str, x: torch.Tensor, sd: dict, k: int) -> torch.Tensor:
    """docs/variants.md, restated with functional ops (no module code shared with the package)."""
    avg, mx = F.adaptive_avg_pool2d(x, 1), F.adaptive_max_pool2d(x, 1)
    if variant == "parallel":
        mc = torch.sigmoid(mlp(avg, sd, "ca.fc.", True) + mlp(mx, sd, "ca.fc.", True))
        ms = torch.sigmoid(spatial_stack(descriptor(x), sd, "sa.conv.", k))
        return x + x * mc + x * ms
    if variant == "dual_bn":
        mc = torch.sigmoid(mlp(avg, sd, "channelattention.fc_avg.", True) + mlp(mx, sd, "channelattention.fc_max.", True))
    else:
        mc = torch.sigmoid(mlp(avg, sd, "channelattention.fc.", False) + mlp(mx, sd, "channelattention.fc.", False))
    y = x * mc
    d = descriptor(y)
    if variant == "deep_spatial":
        ms = torch.sigmoid(spatial_stack(d, sd, "spatialattention.conv.", k) + d.mean(1, keepdim=True))
    else:
        ms = torch.sigmoid(F.conv2d(d, sd["spatialattention.conv1.weight"], padding=k // 2))
    return y * ms


def test_list_variants_names_all_four():
    assert list_variants() == VARIANTS
    assert list_variants("d*") == ["dual_bn", "deep_spatial"]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kernel_size", [3, 7])
def test_variant_matches_functional_formulation(variant, kernel_size):
    module = randomize_batchnorm(create_cbam(variant, C, kernel_size=kernel_size)).eval()
    x = torch.randn(3, C, H, W)
    with torch.no_grad():
        out = module(x)
        ref = functional_reference(variant, x, module.state_dict(), kernel_size)
    assert out.shape == x.shape
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


EXPECTED_KEYS = {
    "original": {"channelattention.fc.0.weight", "channelattention.fc.2.weight", "spatialattention.conv1.weight"},
    "dual_bn": {f"channelattention.{b}.{i}.{p}" for b in ("fc_avg", "fc_max") for i in (0, 3) for p in ("weight",)}
    | {f"channelattention.{b}.{i}.{p}" for b in ("fc_avg", "fc_max") for i in (1, 4)
       for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    | {"spatialattention.conv1.weight"},
    "deep_spatial": {"channelattention.fc.0.weight", "channelattention.fc.2.weight"}
    | {f"spatialattention.conv.{i}.weight" for i in (0, 3)}
    | {f"spatialattention.conv.{i}.{p}" for i in (1, 4) for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")},
    "parallel": {f"{m}.{i}.weight" for m in ("ca.fc", "sa.conv") for i in (0, 3)}
    | {f"{m}.{i}.{p}" for m in ("ca.fc", "sa.conv") for i in (1, 4) for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")},
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_dict_keys_are_the_documented_ones(variant):
    assert set(create_cbam(variant, C).state_dict()) == EXPECTED_KEYS[variant]


@pytest.mark.parametrize("variant", VARIANTS)
def test_seed_checkpoint_loads_strictly_and_matches(variant, tmp_path):
    seed = randomize_batchnorm(build_seed_cbam(variant, C, kernel_size=7), seed=1).eval()
    path = tmp_path / "seed.pt"
    torch.save(seed.state_dict(), path)
    ours = create_cbam(variant, C, kernel_size=7)
    ours.load_state_dict(torch.load(path, weights_only=True), strict=True)
    ours.eval()
    x = torch.randn(2, C, H, W)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), seed(x), rtol=0, atol=1e-6)


def test_parallel_uses_he_init_and_others_pytorch_default():
    torch.manual_seed(0)
    par = create_cbam("parallel", 256)
    w = par.ca.fc[0].weight  # kaiming fan_out relu: std = sqrt(2 / (out_channels * k * k))
    assert abs(w.std().item() - (2 / w.shape[0]) ** 0.5) < 0.15 * (2 / w.shape[0]) ** 0.5
    assert torch.all(par.ca.fc[1].weight == 1) and torch.all(par.ca.fc[1].bias == 0)
    orig = create_cbam("original", 256).channelattention.fc[0].weight
    bound = 1 / (orig.shape[1] ** 0.5)  # PyTorch default: kaiming_uniform(a=sqrt(5)) -> U(-1/sqrt(fan_in), ..)
    assert orig.abs().max().item() <= bound + 1e-6


@pytest.mark.parametrize("variant", ["original", "dual_bn", "deep_spatial"])
def test_channels_below_ratio_is_rejected_with_values(variant):
    with pytest.raises(ValueError, match=r"channels=8 < ratio=16"):
        create_cbam(variant, 8)


def test_parallel_accepts_few_channels_with_min_width_four():
    m = create_cbam("parallel", 8)
    assert m.ca.fc[0].out_channels == 4


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("channels", [0, -3])
def test_non_positive_channels_rejected(variant, channels):
    with pytest.raises(UsageError, match=f"channels must be a positive integer, got {channels}"):
        create_cbam(variant, channels)


@pytest.mark.parametrize("variant", ["original", "dual_bn"])
@pytest.mark.parametrize("kernel_size", [1, 5, 9])
def test_original_family_accepts_only_3_or_7(variant, kernel_size):
    with pytest.raises(ValueError, match=f"kernel_size={kernel_size} is not allowed; valid: 3, 7"):
        create_cbam(variant, C, kernel_size=kernel_size)


@pytest.mark.parametrize("variant", ["deep_spatial", "parallel"])
def test_deep_spatial_stack_rejects_even_kernels_and_accepts_odd(variant):
    with pytest.raises(ValueError, match="kernel_size=4 must be a positive odd number"):
        create_cbam(variant, C, kernel_size=4)
    assert create_cbam(variant, C, kernel_size=5).eval()(torch.randn(1, C, 9, 9)).shape == (1, C, 9, 9)


def test_unknown_variant_suggests_close_match():
    with pytest.raises(ValueError, match=r"unknown variant 'dualbn' \(did you mean 'dual_bn'\?\); valid: original, dual_bn, deep_spatial, parallel"):
        create_cbam("dualbn", C)


def test_batchnorm_variant_in_training_mode_with_batch_one_is_the_documented_trap():
    # Why export and inference run in eval mode: BN on N x C x 1 x 1 needs batch > 1 in training.
    m = create_cbam("dual_bn", C).train()
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        m(torch.randn(1, C, 8, 8))
    assert create_cbam("dual_bn", C).eval()(torch.randn(1, C, 8, 8)).shape == (1, C, 8, 8)
