"""Argument groups shared by the commands (as Polygraphy's ``tools/args``): an option that two
commands take is defined once here, so it is spelled, parsed and documented the same everywhere.

A group that has something to parse is an :class:`ArgGroup`: ``add`` declares its options, ``parse``
turns what was typed into typed values on the namespace (``args.precisions`` becomes a list) or
refuses it in one line naming the option. Commands register groups with
:meth:`~cbam_deploy.cli.common.ArgumentParser.add_group`; ``run_command`` parses every group before
the command runs, so a command only ever sees parsed values. Options with nothing to parse (flags,
paths) are plain ``add_*`` functions.

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


class ArgGroup:
    """Options that are declared and parsed together."""

    def add(self, parser: argparse.ArgumentParser) -> None:
        raise NotImplementedError

    def parse(self, args: argparse.Namespace) -> None:
        """Replace the typed text on ``args`` with values; raise UsageError naming the option."""


class PrecisionsArgs(ArgGroup):
    """``--precisions A,B`` -> ``args.precisions`` (a list); ``args.precisions_named`` says whether the
    user typed something other than the default (INT8 named on purpose needs calibration data)."""

    def __init__(self, default: str, valid: Sequence[str] = PRECISIONS) -> None:
        self.default, self.valid = default, tuple(valid)

    def add(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--precisions", default=self.default, metavar="A,B",
                            help=f"comma-separated, of {','.join(self.valid)} (default {self.default})")

    def parse(self, args: argparse.Namespace) -> None:
        args.precisions_named = args.precisions != self.default
        args.precisions = csv_choices(args.precisions, self.valid, "--precisions")


class BackendsArgs(ArgGroup):
    """``--backends A,B`` -> ``args.backends`` (a list, or None where the default is None)."""

    def __init__(self, default: str | None, valid: Sequence[str] = BACKENDS, help: str | None = None) -> None:
        self.default, self.valid = default, tuple(valid)
        self.help = help or f"comma-separated, of {','.join(self.valid)} (default {default})"

    def add(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--backends", default=self.default, metavar="A,B", help=self.help)

    def parse(self, args: argparse.Namespace) -> None:
        if args.backends is not None:
            args.backends = csv_choices(args.backends, self.valid, "--backends")


class BatchSizesArgs(ArgGroup):
    """``--batch-sizes N,M`` -> ``args.batch_sizes`` (positive integers, or None where the default is
    None: the command picks one by mode)."""

    def __init__(self, default: str | None, help: str | None = None) -> None:
        self.default = default
        self.help = help or f"comma-separated batch sizes for dynamic-batch models (default {default})"

    def add(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--batch-sizes", default=self.default, metavar="N,M", help=self.help)

    def parse(self, args: argparse.Namespace) -> None:
        if args.batch_sizes is not None:
            args.batch_sizes = csv_positive_ints(args.batch_sizes, "--batch-sizes")


class ResolutionsArgs(ArgGroup):
    """``--resolutions HxW,HxW`` -> ``args.resolutions`` (a list of (H, W), or None)."""

    def add(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--resolutions", default=None, metavar="HxW,HxW",
                            help="comma-separated HxW for dynamic-H/W models (default: the traced one and the "
                                 "untraced one the export checked)")

    def parse(self, args: argparse.Namespace) -> None:
        args.resolutions = csv_resolutions(args.resolutions)


class OutputFileArg(ArgGroup):
    """One output file option (a picture, a plot): refused before any work if it exists (unless
    --force, declared by the command) or cannot be written."""

    def __init__(self, flag: str, metavar: str, help: str) -> None:
        self.flag, self.metavar, self.help = flag, metavar, help

    def add(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(self.flag, default=None, metavar=self.metavar, help=self.help)

    def parse(self, args: argparse.Namespace) -> None:
        check_output_files(args, self.flag.removeprefix("--").replace("-", "_"))


class ReportArgs(ArgGroup):
    """``--json-out`` (and ``--markdown``) report files and ``--force``, refused before any work if they
    exist."""

    def __init__(self, *, markdown: bool = True) -> None:
        self.markdown = markdown

    def add(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json-out", default=None, metavar="PATH", help="also write the full result as JSON to PATH")
        if self.markdown:
            parser.add_argument("--markdown", default=None, metavar="PATH", help="also write a Markdown report to PATH")
        add_force_arg(parser, "overwrite report files that already exist")

    def parse(self, args: argparse.Namespace) -> None:
        check_output_files(args, "json_out", *(("markdown",) if self.markdown else ()))


def add_json_args(p: argparse.ArgumentParser) -> None:
    """``--json`` means the same in every command: the full result as JSON on stdout (tables go to stderr)."""
    p.add_argument("--json", action="store_true",
                   help="print the full result as JSON on stdout (human-readable output goes to stderr)")


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
