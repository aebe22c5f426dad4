"""Constructor checks shared by the variants: reject bad configurations before PyTorch does."""

from __future__ import annotations

from ...errors import UsageError


def check_channels(variant: str, channels: int) -> None:
    if isinstance(channels, bool) or not isinstance(channels, int) or channels <= 0:
        raise UsageError(f"{variant}: channels must be a positive integer, got {channels!r}")


def check_ratio(variant: str, channels: int, ratio: int, *, min_hidden: int = 0) -> None:
    """``channels // ratio`` is the MLP width; the seed crashes deep in PyTorch when it is 0."""
    if isinstance(ratio, bool) or not isinstance(ratio, int) or ratio <= 0:
        raise UsageError(f"{variant}: ratio must be a positive integer, got {ratio!r}")
    if min_hidden == 0 and channels < ratio:
        raise UsageError(
            f"{variant}: channels={channels} < ratio={ratio} gives a hidden width of "
            f"{channels}//{ratio} = 0; use ratio <= {channels}"
        )


def check_kernel_size(variant: str, kernel_size: int, allowed: tuple[int, ...] | None) -> None:
    """``allowed`` None means any odd size (padding k//2 keeps H and W only for odd k)."""
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int):
        raise UsageError(f"{variant}: kernel_size must be an integer, got {kernel_size!r}")
    if allowed is not None:
        if kernel_size not in allowed:
            raise UsageError(
                f"{variant}: kernel_size={kernel_size} is not allowed; "
                f"valid: {', '.join(map(str, allowed))}"
            )
    elif kernel_size <= 0 or kernel_size % 2 == 0:
        raise UsageError(
            f"{variant}: kernel_size={kernel_size} must be a positive odd number "
            "(padding kernel_size//2 keeps the spatial size only for odd kernels)"
        )
