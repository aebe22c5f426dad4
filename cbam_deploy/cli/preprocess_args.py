"""``cbam-export``'s image-preprocessing options: what a user's image model expects, recorded in its
metadata so that ``cbam-infer IMAGE.png``, the Triton config and clients preprocess the same way."""

from __future__ import annotations

import argparse
import math
from typing import Any

from ..errors import UsageError
from ..shapes import parse_shape
from .args import ArgGroup

OPTIONS = ("mean", "std", "image_size", "channel_order")


class PreprocessingArgs(ArgGroup):
    """``--mean/--std/--image-size/--channel-order`` -> ``args.image_preprocessing`` (a dict, or None
    when none of them is given)."""

    def add(self, p: argparse.ArgumentParser) -> None:
        g = p.add_argument_group("image preprocessing (--model; recorded in export.json, config.pbtxt and used by "
                                 "cbam-infer)")
        g.add_argument("--mean", default=None, metavar="R,G,B",
                       help="per-channel mean subtracted after scaling pixels to 0..1 (e.g. 0.485,0.456,0.406); "
                            "needs --std")
        g.add_argument("--std", default=None, metavar="R,G,B",
                       help="per-channel standard deviation divided by after the mean (e.g. 0.229,0.224,0.225); "
                            "needs --mean")
        g.add_argument("--image-size", default=None, metavar="HxW",
                       help="size images are resized to (default: the H x W of the first --input-shape)")
        g.add_argument("--channel-order", default=None, choices=("RGB", "BGR"),
                       help="channel order the network takes (default RGB; --mean/--std are in this order)")

    def parse(self, args: argparse.Namespace) -> None:
        args.image_preprocessing = preprocessing_from_args(args)


def _triple(option: str, text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"--{option} {text!r} must be three numbers, e.g. 0.485,0.456,0.406") from None
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise UsageError(f"--{option} {text!r} must be three finite numbers (one per channel)")
    if option == "std" and any(v <= 0 for v in values):
        raise UsageError(f"--std {text!r}: every value must be above 0 (images are divided by it)")
    return values


def preprocessing_from_args(args: argparse.Namespace) -> dict[str, Any] | None:
    """The preprocessing the options give, or None when none of them is given."""
    given = [o for o in OPTIONS if getattr(args, o) is not None]
    if not given:
        return None
    if args.mean is None or args.std is None:
        raise UsageError("image preprocessing needs both --mean and --std "
                         f"(given: {', '.join('--' + o.replace('_', '-') for o in given)})")
    out: dict[str, Any] = {"mean": _triple("mean", args.mean), "std": _triple("std", args.std),
                           "channel_order": args.channel_order or "RGB"}
    if args.image_size is not None:
        try:
            out["input_size"] = list(parse_shape(args.image_size))
        except (UsageError, ValueError):
            raise UsageError(f"--image-size {args.image_size!r} must be HxW, e.g. 224x224") from None
        if len(out["input_size"]) != 2:
            raise UsageError(f"--image-size {args.image_size!r} must be HxW, e.g. 224x224")
        from ..model_dir import MAX_INPUT_SIDE

        if any(side > MAX_INPUT_SIDE for side in out["input_size"]):
            raise UsageError(f"--image-size {args.image_size}: at most {MAX_INPUT_SIDE} pixels a side")
    return out
