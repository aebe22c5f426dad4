"""``cbam-train``: train a host + CBAM variant on the reference task and save a checkpoint."""

from __future__ import annotations

import argparse
import io
import shlex
import sys
from pathlib import Path
from typing import Sequence

from ..errors import UsageError
from ..reference.config import REFERENCE_ARCH, TrainConfig
from .args import add_force_arg, add_json_args, positive_float, positive_int
from .common import EXIT_OK, ArgumentParser, add_debug_flag, run_command


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig(variant=None)
    p = ArgumentParser(prog="cbam-train",
                       description="Train a host network with a CBAM variant on the reference task (generated "
                                   "64x64 shapes) on the CPU, seeded and reproducible; save a checkpoint that "
                                   "cbam-export --weights loads.")
    p.add_argument("--variant", required=True, help="CBAM variant, or 'none' for the plain host")
    p.add_argument("--arch", default=REFERENCE_ARCH, help=f"host network (default {REFERENCE_ARCH})")
    p.add_argument("--out", required=True, help="checkpoint file to write (.pt)")
    p.add_argument("--epochs", type=positive_int, default=d.epochs, help=f"default {d.epochs}")
    p.add_argument("--train-count", type=positive_int, default=d.train_count, help=f"training images (default {d.train_count})")
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size, help=f"default {d.batch_size}")
    p.add_argument("--lr", type=positive_float, default=d.lr, help=f"peak learning rate, one-cycle (default {d.lr})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"training seed (default {d.seed})")
    p.add_argument("--threads", type=positive_int, default=d.threads, help=f"torch threads (default {d.threads})")
    add_force_arg(p, "overwrite --out if it exists")
    add_json_args(p)
    add_debug_flag(p)
    return p


def run(args: argparse.Namespace) -> int:
    import torch

    from ..artifacts import atomic_write_bytes
    from ..models.registry import HOSTS, VARIANTS
    from ..reference.train import checkpoint_payload, train
    from .render import print_json

    HOSTS.get(args.arch)
    variant = None if args.variant == "none" else VARIANTS.get(args.variant).name
    out = Path(args.out)
    if out.exists() and not args.force:
        raise UsageError(f"{str(out)!r} already exists; pass --force to overwrite it")
    if args.batch_size < 2:
        raise UsageError("--batch-size must be at least 2 (BatchNorm on pooled features needs 2 samples)")
    config = TrainConfig(variant=variant, arch=args.arch, epochs=args.epochs, batch_size=args.batch_size,
                         lr=args.lr, train_count=args.train_count, seed=args.seed, threads=args.threads)
    from ..progress import make_console

    console = make_console(stderr=True)  # progress on stderr: stdout stays for --json
    console.print(f"training {args.arch} + {variant or 'no attention'}: {args.epochs} epochs x "
                  f"{args.train_count} images, seed {args.seed}")

    def on_epoch(row: dict) -> None:
        console.print(f"  epoch {row['epoch']:>2}  loss {row['loss']:.4f}  held-out top-1 "
                      f"{100 * row['heldout_top1']:.1f}%  [dim]{row['seconds']:.0f}s[/]")

    model, result = train(config, on_epoch=on_epoch)
    command = "cbam-train " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if sys.argv[0].endswith("cbam-train") else []))
    buffer = io.BytesIO()
    torch.save(checkpoint_payload(model, result, command.strip()), buffer)
    atomic_write_bytes(out, buffer.getvalue())
    summary = {"checkpoint": str(out), "heldout_top1": result.heldout_top1, "parameters": result.parameters,
               "train_seconds": round(result.train_seconds, 1)}
    if args.json:
        print_json(result.to_dict() | summary)
    else:
        console.print(f"[bold green]wrote[/] {out}: held-out top-1 {100 * result.heldout_top1:.1f}%, "
                      f"{result.parameters:,} parameters, {result.train_seconds:.0f}s")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("cbam-train", run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
