"""``cbam-dataset``: write the reference task's images as PNG files plus labels.csv."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from ..errors import UsageError
from ..reference.config import DEFAULT_SEED
from .args import add_force_arg, positive_int
from .common import EXIT_OK, ArgumentParser, add_debug_flag, run_command


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="cbam-dataset",
                       description="Write reference-task images (64x64 RGB shapes on clutter) as PNG files and "
                                   "labels.csv: calibration folders, cbam-infer inputs. Deterministic per seed.")
    p.add_argument("out", help="folder to write (created; must be empty unless --force)")
    p.add_argument("--split", choices=("train", "heldout"), default="heldout", help="default heldout")
    p.add_argument("--count", type=positive_int, default=100, help="number of images (default 100)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"dataset seed (default {DEFAULT_SEED})")
    add_force_arg(p, "write into a non-empty folder")
    add_debug_flag(p)
    return p


def run(args: argparse.Namespace) -> int:
    from ..reference.dataset import write_png_folder

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{str(out)!r} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise UsageError(f"{str(out)!r} is not empty; pass --force to write into it")
    labels = write_png_folder(out, args.count, split=args.split, seed=args.seed)
    print(f"wrote {args.count} {args.split} images and {labels}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("cbam-dataset", run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
