"""Host networks, registered by name, and ``create_model`` which puts a variant inside one."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from torch import nn

from ..errors import UsageError
from .registry import HOSTS, VARIANTS
from .resnet import BasicBlock, Bottleneck, ResNet
from .variants import create_cbam

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class HostDefaults:
    """What a host expects by default: input shape (N, C, H, W) and preprocessing."""

    input_shape: tuple[int, int, int, int]
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    is_classifier: bool


# The reference task's images are 64x64 RGB; its mean/std are fixed, not estimated, so they
# never change when the dataset generator changes.
REFERENCE_MEAN = (0.5, 0.5, 0.5)
REFERENCE_STD = (0.25, 0.25, 0.25)

HOST_DEFAULTS: dict[str, HostDefaults] = {
    "cbam": HostDefaults((1, 64, 32, 32), None, None, is_classifier=False),
    "resnet_mini": HostDefaults((1, 3, 64, 64), REFERENCE_MEAN, REFERENCE_STD, is_classifier=True),
    **{
        name: HostDefaults((1, 3, 224, 224), IMAGENET_MEAN, IMAGENET_STD, is_classifier=True)
        for name in ("resnet18", "resnet34", "resnet50", "resnet101")
    },
}


def _attention(variant: str | None, ratio: int, kernel_size: int):
    if variant is None:
        return None
    VARIANTS.get(variant)  # an unknown name fails here, listing the valid ones
    return partial(create_cbam, variant, ratio=ratio, kernel_size=kernel_size)


@HOSTS.register("cbam", description="the attention module alone (input N x channels x H x W)")
def _cbam(variant: str | None, *, channels: int = 64, ratio: int = 16, kernel_size: int = 7,
          num_classes: int | None = None) -> nn.Module:
    if variant is None:
        raise UsageError("host 'cbam' is the attention module alone: it needs a variant")
    return create_cbam(variant, channels, ratio=ratio, kernel_size=kernel_size)


def _resnet(block, layers, **fixed):
    def build(variant: str | None, *, num_classes: int = 1000, ratio: int = 16, kernel_size: int = 7,
              channels: int | None = None) -> nn.Module:
        return ResNet(block, layers, num_classes=num_classes,
                      attention=_attention(variant, ratio, kernel_size), **fixed)

    return build


HOSTS.register("resnet_mini", description="compact ResNet (1-1-1-1 basic blocks, widths 16-128) for 64x64 images; the reference task's host")(
    _resnet(BasicBlock, [1, 1, 1, 1], widths=(16, 32, 64, 128), stem="compact"))
HOSTS.register("resnet18", description="ResNet-18 (torchvision layout)")(_resnet(BasicBlock, [2, 2, 2, 2]))
HOSTS.register("resnet34", description="ResNet-34 (torchvision layout)")(_resnet(BasicBlock, [3, 4, 6, 3]))
HOSTS.register("resnet50", description="ResNet-50 (torchvision layout)")(_resnet(Bottleneck, [3, 4, 6, 3]))
HOSTS.register("resnet101", description="ResNet-101 (torchvision layout)")(_resnet(Bottleneck, [3, 4, 23, 3]))


def list_hosts(pattern: str = "*") -> list[str]:
    """Registered host network names matching a glob pattern."""
    return HOSTS.names(pattern)


def host_defaults(arch: str) -> HostDefaults:
    """Default input shape and preprocessing of a host network."""
    HOSTS.get(arch)  # raises with the valid names
    return HOST_DEFAULTS[arch]


def create_model(
    arch: str,
    variant: str | None,
    *,
    num_classes: int = 1000,
    ratio: int = 16,
    kernel_size: int = 7,
    channels: int = 64,
) -> nn.Module:
    """Build ``arch`` with ``variant`` in every residual block (``variant=None``: the plain host).

    For ``arch='cbam'`` the result is the attention module alone for ``channels`` channels.
    ``variant='none'`` (as the CLI spells it) is the plain host too.
    """
    variant = None if variant == "none" else variant
    entry = HOSTS.get(arch)
    if arch == "cbam":
        return entry.builder(variant, channels=channels, ratio=ratio, kernel_size=kernel_size)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes <= 0:
        raise UsageError(f"num_classes must be a positive integer, got {num_classes!r}")
    return entry.builder(variant, num_classes=num_classes, ratio=ratio, kernel_size=kernel_size)
