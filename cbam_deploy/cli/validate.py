"""``cbam-validate``: the parity matrix in one command, eager against every backend and precision."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from ..artifacts import atomic_write_text
from ..compare.matrix import BACKENDS, Cell, markdown_table, validate
from ..compare.tolerances import TOLERANCES
from ..errors import UsageError
from ..model_dir import ExportedModel
from ..precision import PRECISIONS
from ..precision.calibration import load_calibration
from .common import EXIT_FAILED, EXIT_OK, ArgumentParser, add_debug_flag, parse_shape, run_command


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="cbam-validate",
        description="Prove an exported model across backends and precisions: PyTorch eager (rebuilt from the "
                    "model's metadata) against ONNX Runtime CPU/CUDA/TensorRT-EP and native TensorRT, in FP32, FP16 "
                    "and INT8 (derived from the FP32 export), at several batch sizes and resolutions, with held-out "
                    "accuracy per cell for reference-task models. Absent backends are shown as skipped with the reason.",
        epilog="Exit codes: 0 every cell that ran passed; 1 a cell failed (named); 2 bad input.")
    p.add_argument("model", help="an exported FP32 model folder (models/NAME) or .onnx file")
    p.add_argument("--precisions", default=",".join(PRECISIONS), help="comma-separated (default fp32,fp16,int8)")
    p.add_argument("--backends", default=",".join(BACKENDS), help=f"comma-separated (default {','.join(BACKENDS)})")
    p.add_argument("--batch-sizes", default="1,4", help="comma-separated batch sizes for dynamic-batch models (default 1,4)")
    p.add_argument("--resolutions", default=None, help="comma-separated HxW for dynamic-H/W models "
                                                         "(default: traced and 1.25x traced)")
    p.add_argument("--calibration", default=None, metavar="DIR|FILE.npy|reference|synthetic",
                   help="INT8 calibration (default: 'reference' for reference-task models, else INT8 is skipped)")
    p.add_argument("--accuracy-count", type=int, default=1000, help="held-out images for accuracy (default 1000)")
    p.add_argument("--json", dest="json_out", default=None, metavar="PATH", help="write the full report as JSON")
    p.add_argument("--markdown", default=None, metavar="PATH", help="write the table as Markdown")
    add_debug_flag(p)
    return p


def _csv(text: str, valid: Sequence[str], what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in valid]
    if bad or not items:
        raise UsageError(f"unknown {what} {', '.join(bad) or '(none given)'}; valid: {', '.join(valid)}")
    return items


def run(args: argparse.Namespace) -> int:
    precisions = _csv(args.precisions, PRECISIONS, "precision")
    backends = _csv(args.backends, BACKENDS, "backend")
    try:
        batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    except ValueError:
        raise UsageError(f"--batch-sizes {args.batch_sizes!r}: expected comma-separated integers") from None
    if any(b <= 0 for b in batch_sizes):
        raise UsageError(f"--batch-sizes {args.batch_sizes!r}: batch sizes must be positive")
    resolutions = None
    if args.resolutions:
        resolutions = [parse_shape(r) for r in args.resolutions.split(",")]
        if any(len(r) != 2 for r in resolutions):
            raise UsageError(f"--resolutions {args.resolutions!r}: expected HxW values, e.g. 64x64,96x96")
    model = ExportedModel.open(args.model)
    calibration, label = None, ""
    source = args.calibration or ("reference" if model.is_reference_task else None)
    if "int8" in precisions and source:
        pre = model.preprocessing
        calibration, label, _ = load_calibration(source, input_shape=model.traced_shape, mean=pre.get("mean"),
                                                 std=pre.get("std"), reference_task=model.is_reference_task)

    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)

    def progress(cell: Cell) -> None:
        mark = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]", "skipped": "[yellow]skipped[/]"}[cell.status]
        console.print(f"{mark} {cell.label}" + (f" [dim]{cell.reason}[/]" if cell.reason else ""))

    cells = validate(model, precisions=precisions, backends=backends, batch_sizes=batch_sizes,
                     resolutions=resolutions, calibration=calibration, calibration_label=label,
                     accuracy_count=args.accuracy_count, on_cell=progress)
    table = Table(title=f"cbam-validate {model.name}: eager vs each backend x precision")
    for col in ("backend", "precision", "result", "worst scaled err", "min cosine", "top-1 agree", "held-out top-1 (eager)"):
        table.add_column(col)
    for c in cells:
        if c.status == "skipped":
            short = c.reason.split(";")[0].split(" (")[0]  # the full reason is in the JSON and Markdown reports
            table.add_row(c.backend, c.precision, f"[yellow]skipped[/]: {short}", "", "", "", "")
            continue
        outs = [o for case in c.parity.cases for o in case.outputs]
        agree = [o.top1_agreement for o in outs if o.top1_agreement is not None]
        acc = c.accuracy
        table.add_row(c.backend, c.precision, "[green]pass[/]" if c.status == "pass" else "[red]FAIL[/]",
                      f"{max(o.scaled_error for o in outs):.2e}", f"{min(o.cosine for o in outs):.6f}",
                      f"{min(agree):.3f}" if agree else "-",
                      f"{100 * acc['top1']:.1f}% ({100 * acc['reference_top1']:.1f}%)" if acc else "-")
    Console().print(table)
    cases = sorted({case.label for c in cells if c.parity for case in c.parity.cases})
    console.print(f"cases: {', '.join(cases)}; tolerances: " + "; ".join(
        f"{p} scaled err <= {t.max_scaled_error:g}, cosine >= {t.min_cosine}" for p, t in TOLERANCES.items() if p in precisions))
    if args.json_out:
        atomic_write_text(args.json_out, json.dumps({"model": str(model.onnx_path), "cells": [c.to_dict() for c in cells]},
                                                    indent=2, default=str) + "\n")
    if args.markdown:
        atomic_write_text(args.markdown, markdown_table(cells))
    failed = [c for c in cells if c.status == "fail"]
    if failed:
        print("cbam-validate: failed: " + "; ".join(f"{c.label} ({c.failures[0]})" for c in failed), file=sys.stderr)
        return EXIT_FAILED
    if not any(c.status == "pass" for c in cells):
        print("cbam-validate: error: no cell could run here (all skipped)", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("cbam-validate", run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
