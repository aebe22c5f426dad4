"""``cbam-export``: a built-in host with a CBAM variant -> folded, simplified, checked ONNX, with parity."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..backends.torch_eager import TorchRunner
from ..errors import UsageError
from ..onnx_export import DEFAULT_OPSET, DYNAMIC_MODES, MIN_OPSET, ExportReport, export_model
from ..models import host_defaults
from ..optimize import DEFAULT_REWRITES, REWRITES
from ..precision import PRECISIONS
from ..precision.calibration import load_calibration
from ..models.registry import HOSTS, VARIANTS
from ..models.spec import ModelSpec, build_model
from ..progress import RichReporter
from ..reference.evaluate import evaluate_heldout, heldout_batch
from .common import EXIT_OK, ArgumentParser, add_debug_flag, parse_shape, print_json, run_command

DEFAULT_VARIANT = "original"
DEFAULT_ARCH = "resnet_mini"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="cbam-export",
        description="Export a CBAM network to ONNX: BatchNorm folded, graph simplified and checked, metadata "
                    "embedded, and parity against PyTorch eager proven with ONNX Runtime (CPU). "
                    f"Writes OUT/NAME/1/model.onnx, OUT/NAME/export.json and OUT/NAME/config.pbtxt (Triton). With no options it exports "
                    f"the trained reference model ({DEFAULT_ARCH} + {DEFAULT_VARIANT}). With --model it exports "
                    "your own network instead.",
        epilog="Exit codes: 0 exported and parity passed; 1 a check failed (nothing written); 2 bad input. "
               "Example: cbam-export --model nets.py:build_net --model-kwargs '{\"num_classes\": 4}' "
               "--weights best.pt --input-shape 1x3x64x64 --input-shape 1x1x64x64 --dynamic all")
    p.add_argument("--variant", default=None, metavar="NAME",
                   help=f"CBAM variant, or 'none' for the plain host (default {DEFAULT_VARIANT}; see --list)")
    p.add_argument("--arch", default=None, metavar="HOST",
                   help=f"host network (default {DEFAULT_ARCH}, the reference task's; see --list)")
    p.add_argument("--model", default=None, metavar="MODULE:FACTORY|FILE.py:FACTORY",
                   help="your own network instead of --arch/--variant: FACTORY(**MODEL_KWARGS) must return an "
                        "nn.Module. This IMPORTS AND RUNS that Python code (a file's folder goes on sys.path while "
                        "it is imported); later stages (cbam-validate, cbam-bench) import it again to rebuild "
                        "the eager model. Needs --input-shape")
    p.add_argument("--model-kwargs", default=None, metavar="JSON",
                   help="keyword arguments for the --model factory, as a JSON object")
    p.add_argument("--weights", default=None, metavar="PATH|reference|random",
                   help="checkpoint to load strictly (a state_dict, or one under 'state_dict'/'model'); "
                        "'reference' = the shipped trained checkpoint (default for resnet_mini); "
                        "'random' = seeded random init (default for other hosts). With --model: a PATH, or "
                        "nothing to keep the weights the factory built")
    p.add_argument("--num-classes", type=int, default=None, help="classifier outputs (default: checkpoint's, else 1000)")
    p.add_argument("--input-shape", action="append", default=None, metavar="NxCxHxW",
                   help="example input shape; repeat it (or separate with commas) for a model with several inputs, "
                        "in forward's order (default: the host's, e.g. 1x3x64x64 for resnet_mini, 1x3x224x224 for "
                        "ResNets; for --arch cbam, C is the channel count). Inputs are float32")
    p.add_argument("--input-names", default=None, metavar="A,B", help="ONNX input names (default input, or input_0, input_1, ...)")
    p.add_argument("--output-names", default=None, metavar="A,B",
                   help="ONNX output names (default logits for the built-in classifiers; output, or output_0, ... otherwise)")
    p.add_argument("--classifier", action="store_true",
                   help="with --model: the (first) output is class logits; parity then also reports top-1 agreement")
    p.add_argument("--kernel-size", type=int, default=None, help="spatial attention kernel (default 7; original/dual_bn: 3 or 7)")
    p.add_argument("--ratio", type=int, default=None, help="channel attention reduction ratio (default 16)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="fp32 (default); fp16: half precision with CBAM attention kept FP32; int8: explicit Q/DQ "
                        "(symmetric, per-channel), needs --calibration. Precision lives in the ONNX, as strongly "
                        "typed TensorRT requires")
    p.add_argument("--keep-io-types", action=argparse.BooleanOptionalAction, default=True,
                   help="fp16: keep FP32 inputs and outputs (default on)")
    p.add_argument("--calibration", default=None, metavar="DIR|FILE.npy|reference|synthetic",
                   help="int8 calibration: a folder of images (preprocessed as the model's metadata says), a "
                        "preprocessed N x C x H x W .npy batch, 'reference' (reference-task training images), or "
                        "'synthetic' (seeded noise; flagged in the report)")
    p.add_argument("--max-scaled-error", type=float, default=None, metavar="X",
                   help="override the tolerance table's max scaled error for this export (recorded in the report); "
                        "for ill-conditioned networks where float32 itself cannot reach the table's value")
    p.add_argument("--dynamic", choices=DYNAMIC_MODES, default="batch",
                   help="dynamic axes: batch (default), hw (height and width), all, none")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET}, minimum 18)")
    p.add_argument("--no-simplify", dest="simplify", action="store_false", help="skip onnxsim")
    p.add_argument("--optimize", action=argparse.BooleanOptionalAction, default=True,
                   help="CBAM-aware graph rewrites after simplification, proven by the parity check (default on; "
                        "--no-optimize exports the graph as simplified)")
    p.add_argument("--rewrites", default=None, metavar="A,B",
                   help=f"which rewrites --optimize applies (default {','.join(DEFAULT_REWRITES)}; all: "
                        f"{','.join(REWRITES)})")
    p.add_argument("--out", default="models", help="model repository folder (default models/)")
    p.add_argument("--name", default=None, help="model name in the repository (default VARIANT_ARCH)")
    p.add_argument("--force", action="store_true", help="overwrite an existing model of the same name")
    p.add_argument("--seed", type=int, default=0, help="seed for random weights (default 0)")
    p.add_argument("--json", action="store_true", help="print the export report as JSON on stdout")
    p.add_argument("--list", action="store_true", help="list variants and host networks, then exit")
    add_debug_flag(p)
    return p


def print_list() -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="CBAM variants")
    table.add_column("variant"), table.add_column("description")
    for e in VARIANTS.entries():
        table.add_row(e.name, e.description)
    hosts = Table(title="Host networks")
    hosts.add_column("host"), hosts.add_column("default input"), hosts.add_column("description")
    for e in HOSTS.entries():
        hosts.add_row(e.name, "x".join(map(str, host_defaults(e.name).input_shape)), e.description)
    console = Console()
    console.print(table)
    console.print(hosts)


def _reference_results(classes: Sequence[str]):
    """Accuracy of the exported model on held-out images, and one real prediction to show."""

    def hook(onnx_bytes: bytes, reference: TorchRunner) -> dict[str, Any]:
        from ..backends.onnxruntime import OnnxRuntimeRunner
        from ..backends.base import cast_feed

        with OnnxRuntimeRunner(onnx_bytes) as ort_runner, reference:
            fixed_batch = ort_runner.input_specs()[0].shape[0]
            step = fixed_batch if isinstance(fixed_batch, int) else None  # --dynamic none/hw: one fixed batch size

            def chunked(run: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
                if step is None:
                    return run

                def call(x: np.ndarray) -> np.ndarray:  # chunks padded to the fixed batch, then trimmed
                    out = []
                    for i in range(0, len(x), step):
                        chunk = x[i:i + step]
                        padded = np.concatenate([chunk, np.zeros((step - len(chunk), *x.shape[1:]), x.dtype)])
                        out.append(run(padded)[:len(chunk)])
                    return np.concatenate(out)
                return call

            predict = chunked(lambda x: ort_runner.infer(cast_feed(ort_runner, {"input": x}))["logits"].astype(np.float32))
            accuracy = evaluate_heldout(predict, reference=chunked(lambda x: reference.infer({"input": x})["logits"]))
            x, labels = heldout_batch(4)
            logits = predict(x[3:4])[0]
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        return {"heldout_accuracy": accuracy.to_dict(),
                "example_prediction": {"image": "heldout #3", "label": classes[int(labels[3])],
                                       "predicted": classes[int(probs.argmax())], "probability": float(probs.max())}}

    return hook


def _names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


def _shapes(args: argparse.Namespace) -> list[tuple[int, ...]] | None:
    if not args.input_shape:
        return None
    return [parse_shape(part) for given in args.input_shape for part in given.split(",") if part.strip()]


def _int8_inputs(args: argparse.Namespace, shape: tuple[int, ...], preprocessing: dict[str, Any],
                 reference_task: bool, reporter: RichReporter) -> tuple[np.ndarray | None, str]:
    if args.precision != "int8":
        if args.calibration is not None:
            raise UsageError("--calibration is only used with --precision int8")
        return None, ""
    if args.calibration is None:
        raise UsageError("--precision int8 needs --calibration DIR|FILE.npy|reference|synthetic")
    calibration, label, warning = load_calibration(
        args.calibration, input_shape=shape, mean=preprocessing.get("mean"), std=preprocessing.get("std"),
        reference_task=reference_task, seed=args.seed)
    if warning:
        reporter.note(warning)
    return calibration, label


def _export_user_model(args: argparse.Namespace, reporter: RichReporter) -> ExportReport:
    """--model: the user's factory, the user's weights, the same pipeline as the built-in hosts."""
    from ..api import export
    from ..models.user_model import (UserModelSpec, build_user_model, canonical_reference, parse_model_kwargs,
                                     state_sha256)

    builtin_only = [f"--{n.replace('_', '-')}" for n in ("variant", "arch", "num_classes", "kernel_size", "ratio")
                    if getattr(args, n) is not None]
    if builtin_only:
        raise UsageError(f"{', '.join(builtin_only)} configure the built-in hosts; with --model, pass your factory's "
                         "arguments in --model-kwargs")
    shapes = _shapes(args)
    if not shapes:
        raise UsageError("--model needs --input-shape (one per input, e.g. --input-shape 1x3x224x224)")
    if args.weights in ("reference", "random"):
        raise UsageError(f"--weights {args.weights} is for the built-in hosts; with --model pass a checkpoint path, "
                         "or leave --weights out to keep the factory's own weights")
    weights = None
    if args.weights:
        from pathlib import Path

        if not Path(args.weights).is_file():
            raise UsageError(f"--weights {args.weights!r}: no such file")
        weights = str(Path(args.weights).resolve())
    spec = UserModelSpec(factory=canonical_reference(args.model), kwargs=parse_model_kwargs(args.model_kwargs),
                         weights=weights, seed=args.seed)
    with reporter.stage("build", f"{args.model}, weights: {args.weights or 'as the factory built them'}"):
        built = build_user_model(spec)
    if built.load_report is not None:
        reporter.note(built.load_report.summary())
    calibration, calibration_label = _int8_inputs(args, shapes[0], {}, False, reporter)
    torch.manual_seed(args.seed)
    example = [torch.randn(*s) for s in shapes]
    name = args.name or type(built.model).__name__.lower() + ("" if args.precision == "fp32" else f"_{args.precision}")
    metadata = {"variant": "user", "host": args.model, "user_model": spec.to_dict(),
                "state_sha256": state_sha256(built.model),
                "checkpoint_sha256": built.checkpoint_sha256 or "none (the factory's own weights)",
                "preprocessing": {"input_size": list(shapes[0][2:]), "layout": "NCHW"} if len(shapes[0]) == 4 else {}}
    return export(built.model, example, out=args.out, name=name, precision=args.precision, dynamic=args.dynamic,
                  input_names=_names(args.input_names), output_names=_names(args.output_names),
                  calibration=calibration, keep_io_types=args.keep_io_types, opset=args.opset,
                  simplify=args.simplify, force=args.force, classifier=args.classifier,
                  max_scaled_error=args.max_scaled_error, metadata=metadata, reporter=reporter,
                  calibration_label=calibration_label, optimize=args.optimize_choice)


def run(args: argparse.Namespace) -> int:
    if args.list:
        print_list()
        return EXIT_OK
    if args.max_scaled_error is not None and not args.max_scaled_error > 0:
        raise UsageError(f"--max-scaled-error must be positive, got {args.max_scaled_error}")
    if args.opset < MIN_OPSET:
        raise UsageError(f"--opset {args.opset} is not supported by the current exporter; use {MIN_OPSET} or newer")
    if args.rewrites is not None:
        args.rewrites = [r.strip() for r in args.rewrites.split(",") if r.strip()]
        unknown = [r for r in args.rewrites if r not in REWRITES]
        if unknown or not args.optimize:
            raise UsageError(f"--rewrites: unknown {', '.join(unknown)}; valid: {', '.join(REWRITES)}" if unknown
                             else "--rewrites goes with --optimize, not --no-optimize")
    optimize = (args.rewrites or True) if args.optimize else False
    args.optimize_choice = optimize
    reporter = RichReporter()
    if args.model:
        report = _export_user_model(args, reporter)
    elif args.model_kwargs or args.classifier:
        raise UsageError("--model-kwargs and --classifier go with --model")
    else:
        report = _export_builtin(args, reporter)
    if args.json:
        print_json(report.to_dict())
    else:
        print_summary(report)
    return EXIT_OK


def _export_builtin(args: argparse.Namespace, reporter: RichReporter) -> ExportReport:
    arch = HOSTS.get(args.arch or DEFAULT_ARCH).name
    variant_name = args.variant or DEFAULT_VARIANT
    variant = None if variant_name == "none" else VARIANTS.get(variant_name).name
    defaults = host_defaults(arch)
    shapes = _shapes(args)
    if shapes and len(shapes) != 1:
        raise UsageError(f"host {arch!r} takes one input; got {len(shapes)} --input-shape values")
    shape = shapes[0] if shapes else defaults.input_shape
    if len(shape) != 4:
        raise UsageError(f"--input-shape {'x'.join(map(str, shape))} must be NxCxHxW (4 dimensions)")
    if arch != "cbam" and shape[1] != 3:
        raise UsageError(f"--input-shape {'x'.join(map(str, shape))}: host {arch!r} takes 3 input channels, got {shape[1]}")
    weights = args.weights or ("reference" if arch == "resnet_mini" else "random")
    spec = ModelSpec(arch=arch, variant=variant, num_classes=args.num_classes, ratio=args.ratio,
                     kernel_size=args.kernel_size, channels=shape[1] if arch == "cbam" else None,
                     weights=weights, seed=args.seed)
    with reporter.stage("build", f"{arch} + {variant or 'no attention'}, weights: {weights}"):
        built = build_model(spec)
    spec = built.spec
    classes = built.config.get("classes")
    if weights == "random":
        reporter.note(f"random weights (seed {args.seed}): parity is proven, but the model predicts nothing useful")
    metadata = {
        "variant": variant or "none", "host": arch, "kernel_size": spec.kernel_size, "ratio": spec.ratio,
        "num_classes": spec.num_classes if defaults.is_classifier else None,
        "classes": classes, "model_spec": spec.to_dict(),
        "preprocessing": {"mean": list(built.config.get("mean") or defaults.mean or []) or None,
                          "std": list(built.config.get("std") or defaults.std or []) or None,
                          "input_size": list(shape[2:]), "layout": "NCHW", "scale": "1/255 then (x - mean) / std"},
        "checkpoint_sha256": built.checkpoint_sha256 or f"none ({weights} weights, seed {args.seed})",
    }
    torch.manual_seed(args.seed)
    example = torch.randn(*shape)
    reference_task = arch == "resnet_mini" and bool(classes)
    hook = _reference_results(classes) if reference_task else None
    calibration, calibration_label = _int8_inputs(args, shape, metadata["preprocessing"], reference_task, reporter)
    parity_data = None
    if args.precision != "fp32":
        # Parity on real inputs: held-out images for the reference task (never the calibration
        # images), else the calibration data itself, else random inputs (said in the report).
        parity_data = heldout_batch(64)[0] if reference_task else calibration
    suffix = "" if args.precision == "fp32" else f"_{args.precision}"
    return export_model(
        built.model, (example,), name=args.name or f"{variant or 'plain'}_{arch}{suffix}", out=args.out,
        input_names=_names(args.input_names), output_names=_names(args.output_names),
        dynamic=args.dynamic, opset=args.opset, simplify=args.simplify, force=args.force,
        classifier=defaults.is_classifier, metadata=metadata, reporter=reporter, after_parity=hook,
        precision=args.precision, keep_io_types=args.keep_io_types, calibration=calibration,
        calibration_label=calibration_label, parity_data=parity_data, max_scaled_error=args.max_scaled_error,
        optimize=args.optimize_choice,
    )


def print_summary(report: ExportReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"parity: eager vs ONNX Runtime CPU ({report.parity.precision}, tolerance: scaled error "
                        f"<= {report.parity.tolerance.max_scaled_error:g}, cosine >= {report.parity.tolerance.min_cosine})")
    several = len(report.metadata.get("output_names", [])) > 1
    for col in ("case", *(("output",) if several else ()), "max abs err", "max rel err", "scaled err", "cosine",
                "top-1 agree", "result"):
        table.add_column(col)
    for case in report.parity.cases:
        for o in case.outputs:
            table.add_row(case.label, *((o.output,) if several else ()), f"{o.max_abs_error:.2e}", f"{o.max_rel_error:.2e}", f"{o.scaled_error:.2e}",
                          f"{o.cosine:.7f}", "-" if o.top1_agreement is None else f"{o.top1_agreement:.3f}",
                          "[green]pass[/]" if o.passed else "[red]FAIL[/]")
    console.print(table)
    before = sum(report.ops_before_simplify.values())
    after = sum(report.ops_after_simplify.values())
    optimized = sum(report.ops_after_optimize.values())
    console.print(f"nodes: {before} exported -> {after} after simplify -> {optimized} after CBAM rewrites; "
                  + ", ".join(f"{k} {v}" for k, v in report.ops_after_optimize.items()))
    if report.optimize.applied:
        console.print("rewrites: " + ", ".join(f"{k} x{v}" for k, v in report.optimize.applied.items()))
    console.print(f"BatchNorms folded: {len(report.fold.folded)}; BatchNormalization nodes in graph: "
                  f"{report.ops_after_simplify.get('BatchNormalization', 0)}")
    details = report.metadata.get("precision_details")
    if details and "kept_fp32_ops" in details:
        console.print(f"fp16: kept FP32 ({', '.join(details['why'])}): "
                      + ", ".join(f"{k} {v}" for k, v in details["kept_fp32_ops"].items())
                      + f"; {details['casts_inserted']} Cast nodes inserted")
    elif details:
        console.print(f"int8: {details['qdq_pairs']} QuantizeLinear nodes, calibration: {details['calibration']}; "
                      "not quantized: " + ", ".join(f"{why} ({n} nodes)" for why, n in details["excluded_nodes"].items()))
    acc = report.extra.get("heldout_accuracy")
    if acc:
        console.print(f"held-out accuracy ({acc['count']} images): ONNX Runtime {100 * acc['top1']:.1f}% "
                      f"(eager {100 * acc['reference_top1']:.1f}%), top-1 agreement {100 * acc['top1_agreement']:.1f}%")
    ex = report.extra.get("example_prediction")
    if ex:
        console.print(f"prediction on {ex['image']} (a {ex['label']}): [bold]{ex['predicted']}[/] "
                      f"(p={ex['probability']:.3f})")
    console.print(f"[bold green]wrote[/] {report.onnx_path} ({report.size_bytes / 1e6:.2f} MB), {report.report_path} "
                  f"and {report.model_dir / 'config.pbtxt'} (Triton) in {report.timings.get('total', 0):.1f}s")


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("cbam-export", run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
