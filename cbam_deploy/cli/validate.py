"""``cbam-validate``: the parity matrix in one command, eager against every backend and precision."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..errors import CbamDeployError, IntegrityError
from ..options import BACKENDS, ONNX_PRECISIONS
from .args import (BackendsArgs, BatchSizesArgs, PrecisionsArgs, ReportArgs, ResolutionsArgs, add_calibration_arg,
                   add_json_args, add_model_folder_args, positive_int)
from .common import EXIT_FAILED, EXIT_OK, ArgumentParser, add_debug_flag, run_command


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="cbam-validate",
        description="Prove an exported model across backends and precisions: PyTorch eager (rebuilt from the "
                    "model's metadata) against ONNX Runtime CPU/CUDA/TensorRT-EP, native TensorRT and OpenVINO (CPU), in "
                    "FP32, FP16 and INT8 (derived from the FP32 export) and BF16 where a backend runs it natively, at "
                    "several batch sizes and resolutions, with held-out accuracy per cell for reference-task models. "
                    "Each cell shows the gate it was judged by; cells that cannot run here are listed one line per "
                    "reason, never counted as passed; the output ends with a one-line verdict. After a failed cell "
                    "(or with --localize) the first diverging PyTorch module is named.",
        epilog="Exit codes: 0 every cell that ran passed; 1 a cell failed (named); 2 bad input; 3 environment.")
    add_model_folder_args(p, what="an exported FP32 model folder (models/NAME) or .onnx file")
    p.add_group(PrecisionsArgs(",".join(ONNX_PRECISIONS)))  # bf16 on request: few backends run it
    p.add_group(BackendsArgs(",".join(BACKENDS)))
    p.add_group(BatchSizesArgs("1,4"))
    p.add_group(ResolutionsArgs())
    add_calibration_arg(p, "Default: 'reference' for the reference model; otherwise INT8 cells are skipped "
                           "(an error when --precisions names int8).")
    p.add_argument("--accuracy-count", type=positive_int, default=1000,
                   help="held-out images for accuracy (reference model; default 1000)")
    p.add_argument("--localize", action="store_true",
                   help="compare every layer with eager and name the first PyTorch module whose output leaves the "
                        "tolerance (runs automatically after a failed cell)")
    add_json_args(p)
    p.add_group(ReportArgs())
    add_debug_flag(p)
    return p


def run(args: argparse.Namespace) -> int:
    from ..api.validate import MISMATCH, open_for_validation

    model = open_for_validation(args.model, trust_model_code=args.trust_model_code, verify=args.verify)
    mismatch = model.integrity.removeprefix(MISMATCH) if model.integrity.startswith(MISMATCH) else ""
    try:
        return _validate(args, model)
    except CbamDeployError as exc:
        if not mismatch:
            raise
        # The file is not the one exported: that is the failure to report, with why it could not be validated.
        raise IntegrityError(f"{mismatch}; it could not be validated as it is either: {exc}") from exc


def _validate(args: argparse.Namespace, model) -> int:
    from ..api.calibration import calibration_for
    from ..api.validate import validate
    from rich.markup import escape

    from .render import print_localization, print_validation, short_reason, write_reports

    precisions = args.precisions
    calibration, label = None, ""
    if "int8" in precisions:
        # INT8 asked for by name needs data: a skipped cell would let the verdict pass without it.
        calibration, label, _ = calibration_for(model, args.calibration, required=args.precisions_named)
    from .render import console as render_console

    console = render_console(True)

    def progress(cell) -> None:
        if cell.status == "skipped":  # listed once per reason after the table
            return
        mark = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]"}[cell.status]
        console.print(f"{mark} {cell.label}" + (f" [dim]{escape(short_reason(cell.reason))}[/]" if cell.reason else ""))

    report = validate(model, precisions=precisions, backends=args.backends, batch_sizes=args.batch_sizes,
                      resolutions=args.resolutions, calibration=calibration, calibration_label=label,
                      accuracy_count=args.accuracy_count, localize=args.localize, on_cell=progress)
    print_validation(model.name, report, precisions, json_stdout=args.json)
    if report.localization is not None:
        print_localization(report.localization, json_stdout=args.json)
    write_reports(args, report.to_dict() | {"model": str(model.onnx_path)}, report)
    if report.failures():
        # One line: the file's mismatch first (if any), then the failed cells, then where parity breaks.
        integrity = [f"{report.integrity_problem}; validated as it is"] if report.integrity_problem else []
        cells = report.failures()[1:] if report.integrity_problem else report.failures()
        parts = [*integrity, *(["validation failed: " + "; ".join(cells)] if cells else [])]
        if getattr(report.localization, "verdict", ""):
            parts.append(report.localization.verdict)
        print("cbam-validate: error: " + "; ".join(parts), file=sys.stderr)
        return EXIT_FAILED
    if not report.passed:
        print("cbam-validate: error: no cell could run here (all skipped: see the reasons above)", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("cbam-validate", run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
