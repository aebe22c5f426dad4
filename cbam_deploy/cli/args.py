"""Argument groups shared by the commands (as Polygraphy's ``tools/args``): an option that two
commands take is defined once here, so it is spelled, parsed and documented the same everywhere.

Nothing here imports torch or onnx: every parser is built for ``--help`` without them.
"""

from __future__ import annotations

import argparse
from typing import Callable, Sequence

from ..errors import UsageError
from ..options import BACKENDS, PRECISIONS
from ..shapes import parse_shape


def positive_int(text: str) -> int:
    """argparse type: an integer > 0 (0 is a value, and here not a valid one: it is never "not given")."""
    return _number(text, int, lambda v: v > 0, "a positive integer")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def positive_float(text: str) -> float:
    """argparse type: a finite float > 0."""
    return _number(text, float, lambda v: v > 0 and v != float("inf"), "a positive number")


def _number(text: str, kind: type, ok: Callable[[float], bool], what: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value


def csv_choices(text: str, valid: Sequence[str], option: str) -> list[str]:
    """'a,b' -> ['a', 'b'], each one of ``valid``."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in valid]
    if bad or not items:
        raise UsageError(f"{option} {text!r}: unknown {', '.join(bad) or '(none given)'}; valid: {', '.join(valid)}")
    return items


def csv_positive_ints(text: str, option: str) -> list[int]:
    """'1,4' -> [1, 4], each a positive integer."""
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UsageError(f"{option} {text!r}: expected comma-separated integers") from None
    if not values or any(v <= 0 for v in values):
        raise UsageError(f"{option} {text!r}: every value must be a positive integer")
    return values


def csv_resolutions(text: str | None, option: str = "--resolutions") -> list[tuple[int, int]] | None:
    """'64x64,96x80' -> [(64, 64), (96, 80)]."""
    if text is None:
        return None
    sizes = [parse_shape(r) for r in text.split(",") if r.strip()]
    if not sizes or any(len(r) != 2 for r in sizes):
        raise UsageError(f"{option} {text!r}: expected HxW values, e.g. 64x64,96x96")
    return [(r[0], r[1]) for r in sizes]


def add_model_folder_args(p: argparse.ArgumentParser, *, what: str = "an exported model folder (models/NAME) or .onnx file") -> None:
    """The model folder a command opens, and how far it is trusted and checked."""
    p.add_argument("model", help=what)
    p.add_argument("--trust-model-code", action="store_true",
                   help="allow importing the Python factory a --model export names in its metadata, to rebuild "
                        "the eager model (that RUNS its code: only for folders you made or trust)")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip the check of model.onnx against the SHA-256 in export.json")


def add_calibration_arg(p: argparse.ArgumentParser, default_help: str) -> None:
    """INT8 calibration data, as every command takes it."""
    p.add_argument("--calibration", default=None, metavar="DIR|FILE.npy|reference|synthetic",
                   help="INT8 calibration: a folder of images (preprocessed as the model's metadata says), a "
                        "preprocessed N x C x H x W .npy batch, 'reference' (the reference task's training "
                        f"images) or 'synthetic' (seeded noise, flagged in reports). {default_help}")


def add_precisions_arg(p: argparse.ArgumentParser, default: str, valid: Sequence[str] = PRECISIONS) -> None:
    p.add_argument("--precisions", default=default, metavar="A,B",
                   help=f"comma-separated, of {','.join(valid)} (default {default})")


def add_backends_arg(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--backends", default=default, metavar="A,B",
                   help=f"comma-separated, of {','.join(BACKENDS)} (default {default})")


def add_batch_sizes_arg(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--batch-sizes", default=default, metavar="N,M",
                   help=f"comma-separated batch sizes for dynamic-batch models (default {default})")


def add_json_args(p: argparse.ArgumentParser) -> None:
    """``--json`` means the same in every command: the full result as JSON on stdout (tables go to stderr)."""
    p.add_argument("--json", action="store_true",
                   help="print the full result as JSON on stdout (human-readable output goes to stderr)")


def add_report_args(p: argparse.ArgumentParser, *, markdown: bool = True) -> None:
    """Reports written to files, refused before any work if they exist (unless --force)."""
    p.add_argument("--json-out", default=None, metavar="PATH", help="also write the full result as JSON to PATH")
    if markdown:
        p.add_argument("--markdown", default=None, metavar="PATH", help="also write a Markdown report to PATH")
    add_force_arg(p, "overwrite report files that already exist")


def add_force_arg(p: argparse.ArgumentParser, what: str) -> None:
    """``--force``, declared once: nothing is overwritten unless asked; ``what`` says what it overwrites."""
    p.add_argument("--force", action="store_true", help=what)


def check_output_files(args: argparse.Namespace, *options: str) -> None:
    """Refuse existing (or unwritable) output files before any work starts: ``options`` are dest names."""
    from ..artifacts import check_output_file

    for dest in options:
        path = getattr(args, dest, None)
        if path:
            check_output_file(path, force=getattr(args, "force", False), option="--" + dest.replace("_", "-"))
