"""Host networks: torchvision names, the paper's placement, parameter counts, bad configurations."""

from __future__ import annotations

import pytest
import torch

from cbam_deploy import create_model, list_hosts
from cbam_deploy.errors import UsageError
from tests.conftest import VARIANTS

# torchvision's ResNet-50 state_dict key set, as far as the backbone goes (spot checks of its layout).
TORCHVISION_KEYS = ["conv1.weight", "bn1.running_var", "layer1.0.conv3.weight", "layer1.0.downsample.0.weight",
                    "layer1.0.downsample.1.bias", "layer4.2.bn3.weight", "fc.weight", "fc.bias"]


def count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_hosts_are_listed():
    assert list_hosts() == ["cbam", "resnet_mini", "resnet18", "resnet34", "resnet50", "resnet101"]


def test_resnet50_parameter_counts_match_the_paper():
    assert round(count(create_model("resnet50", None)) / 1e6, 2) == 25.56
    # The seed's MLP is bias-free: 28.07 M (the paper's 28.09 M includes MLP biases).
    assert round(count(create_model("resnet50", "original")) / 1e6, 2) == 28.07


def test_plain_resnet50_has_torchvision_keys_and_nothing_else_named_cbam():
    keys = create_model("resnet50", None).state_dict().keys()
    assert all(k in keys for k in TORCHVISION_KEYS)
    assert not any(".cbam." in k for k in keys)
    assert len(keys) == 320  # torchvision resnet50().state_dict() has 320 entries


@pytest.mark.parametrize("variant", VARIANTS)
def test_attention_sits_under_layer_block_cbam(variant):
    model = create_model("resnet18", variant)
    blocks = [name for name, _ in model.named_children() if name.startswith("layer")]
    assert blocks == ["layer1", "layer2", "layer3", "layer4"]
    cbam_modules = [n for n, _ in model.named_modules() if n.endswith(".cbam")]
    assert cbam_modules == [f"layer{i}.{j}.cbam" for i in range(1, 5) for j in range(2)]


def test_attention_applied_after_last_bn_before_shortcut():
    """Replace the attention with a recorder: it must see bn2's output, and its output must be what
    is added to the shortcut (checked by zeroing it: the block then returns relu(identity))."""
    model = create_model("resnet18", "original").eval()
    block = model.layer1[0]
    seen = {}

    class Zero(torch.nn.Module):
        def forward(self, x):
            seen["in"] = x
            return torch.zeros_like(x)

    block.cbam = Zero()
    x = torch.randn(1, 64, 8, 8)
    with torch.no_grad():
        out = block(x)
        expected_in = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x)))))
    torch.testing.assert_close(seen["in"], expected_in)
    torch.testing.assert_close(out, torch.relu(x))


@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet_mini"])
def test_num_classes_is_a_parameter(arch):
    model = create_model(arch, "dual_bn", num_classes=7).eval()
    x = torch.randn(2, 3, 64, 64)
    assert model(x).shape == (2, 7)


def test_cbam_host_is_the_module_alone():
    m = create_model("cbam", "deep_spatial", channels=32)
    assert m(torch.randn(2, 32, 8, 8)).shape == (2, 32, 8, 8)


@pytest.mark.parametrize("kwargs, message", [
    (dict(arch="resnet51", variant="original"), r"unknown host network 'resnet51' \(did you mean 'resnet50'\?\)"),
    (dict(arch="resnet18", variant="orignal"), r"unknown variant 'orignal' \(did you mean 'original'\?\)"),
    (dict(arch="resnet18", variant="original", num_classes=0), "num_classes must be a positive integer, got 0"),
    (dict(arch="resnet18", variant="original", kernel_size=5), "kernel_size=5 is not allowed"),
    (dict(arch="cbam", variant="original", channels=4), "channels=4 < ratio=16"),
    (dict(arch="cbam", variant=None), "needs a variant"),
])
def test_bad_configurations_raise_value_error_naming_the_values(kwargs, message):
    with pytest.raises(UsageError, match=message):
        create_model(**kwargs)
