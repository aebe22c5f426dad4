"""``cbam-export``: parse, call ``api.export.export_source`` with a model source, render.

Top level imports only the standard library and light package modules: ``--help`` needs neither
torch nor onnx.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..errors import UsageError
from ..options import (CALIBRATION_METHODS, DEFAULT_ARCH, DEFAULT_CALIBRATION_METHOD, DEFAULT_EXPORTER, FLAVOR_CALIBRATION_METHOD, DEFAULT_OPSET,
                       DEFAULT_REWRITES, DEFAULT_TARGET, DEFAULT_VARIANT, DYNAMIC_MODES, EXPORTERS, ONNX_PRECISIONS,
                       REWRITE_NAMES, TARGET_INT8_FLAVOR, TARGETS)
from ..shapes import parse_shape
from .args import add_calibration_arg, add_force_arg, add_json_args, positive_float, positive_int
from .common import EXIT_OK, ArgumentParser, add_debug_flag, run_command
from .preprocess_args import PreprocessingArgs


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="cbam-export",
        description="Export a CBAM network to ONNX: BatchNorm folded, graph simplified and checked, metadata "
                    "embedded, and parity against PyTorch eager proven with ONNX Runtime (CPU). "
                    "Writes OUT/NAME/1/model.onnx, OUT/NAME/export.json and OUT/NAME/config.pbtxt (Triton). "
                    f"With no options it exports the trained reference model ({DEFAULT_ARCH} + {DEFAULT_VARIANT}). "
                    "With --model it exports your own network instead.",
        epilog="Exit codes: 0 exported and parity passed; 1 a check failed (nothing written); 2 bad input; 3 environment; 130/143 interrupted. "
               "Example: cbam-export --model nets.py:build_net --model-kwargs '{\"num_classes\": 4}' "
               "--weights best.pt --input-shape 1x3x64x64 --input-shape 1x1x64x64 --dynamic all")
    _model_args(p)
    p.add_group(PreprocessingArgs())
    _export_args(p)
    _precision_target_args(p)
    p.add_argument("--out", default="models", help="model repository folder (default models/)")
    p.add_argument("--name", default=None, help="model name in the repository (default VARIANT_ARCH)")
    add_force_arg(p, "overwrite an existing model of the same name")
    p.add_argument("--seed", type=int, default=0, help="seed for random weights and example inputs (default 0)")
    add_json_args(p)
    p.add_argument("--list", action="store_true", help="list variants and host networks, then exit")
    add_debug_flag(p)
    return p


def _model_args(p: argparse.ArgumentParser) -> None:
    """Where the model comes from: a built-in host + variant, or the user's factory."""
    p.add_argument("--variant", default=None, metavar="NAME",
                   help=f"CBAM variant, or 'none' for the plain host (default {DEFAULT_VARIANT}; see --list)")
    p.add_argument("--arch", default=None, metavar="HOST",
                   help=f"host network (default {DEFAULT_ARCH}, the reference task's; see --list)")
    p.add_argument("--model", default=None, metavar="MODULE:FACTORY|FILE.py:FACTORY",
                   help="your own network instead of --arch/--variant: FACTORY(**MODEL_KWARGS) must return an "
                        "nn.Module. This IMPORTS AND RUNS that Python code (as part of its package when its folder "
                        "is one); later stages import it again to rebuild the eager model only with "
                        "--trust-model-code. Needs --input-shape")
    p.add_argument("--model-kwargs", default=None, metavar="JSON",
                   help="keyword arguments for the --model factory, as a JSON object")
    p.add_argument("--weights", default=None, metavar="PATH|reference|random",
                   help="checkpoint to load strictly (a state_dict, or one under 'state_dict'/'model'); "
                        "'reference' = the shipped trained checkpoint (default for resnet_mini); "
                        "'random' = seeded random init (default for other hosts). With --model: a PATH, or "
                        "nothing to keep the weights the factory built")
    p.add_argument("--num-classes", type=positive_int, default=None,
                   help="classifier outputs (default: checkpoint's, else 1000)")
    p.add_argument("--input-shape", action="append", default=None, metavar="NxCxHxW",
                   help="example input shape; repeat it (or separate with commas) for a model with several inputs, "
                        "in forward's order (default: the host's, e.g. 1x3x64x64 for resnet_mini, 1x3x224x224 for "
                        "ResNets; for --arch cbam, C is the channel count). Inputs are float32")
    p.add_argument("--classifier", action="store_true",
                   help="with --model: the (first) output is class logits; parity then also reports top-1 agreement")
    p.add_argument("--kernel-size", type=positive_int, default=None,
                   help="spatial attention kernel (default 7; original/dual_bn: 3 or 7)")
    p.add_argument("--ratio", type=positive_int, default=None, help="channel attention reduction ratio (default 16)")


def _export_args(p: argparse.ArgumentParser) -> None:
    """How the graph is made, named, converted and checked."""
    p.add_argument("--input-names", default=None, metavar="A,B", help="ONNX input names (default input, or input_0, input_1, ...)")
    p.add_argument("--output-names", default=None, metavar="A,B",
                   help="rename the ONNX outputs, in order. Default: logits for the built-in classifiers; output for "
                        "one tensor; dict keys (boxes, scores) and positions (output_0, output_1.2) for structured "
                        "outputs, which are flattened")
    p.add_argument("--precision", choices=ONNX_PRECISIONS, default="fp32",
                   help="fp32 (default); fp16: half precision with CBAM attention kept FP32; int8: Q/DQ in the "
                        "flavor --target runs fast, needs --calibration. Precision lives in the ONNX, as strongly "
                        "typed TensorRT requires")
    p.add_argument("--keep-io-types", action=argparse.BooleanOptionalAction, default=True,
                   help="fp16: keep FP32 inputs and outputs (default on)")
    add_calibration_arg(p, "Needed by --precision int8; with fp16 it gives parity real inputs.")
    p.add_argument("--max-scaled-error", type=positive_float, default=None, metavar="X",
                   help="override the FP32/FP16/INT8 parity gate's max scaled error (recorded in the report). "
                        "Without it FP32 is gated at the table's value, or at a multiple of the model's own float32 "
                        "error (float32 vs float64 eager) when that is larger")
    p.add_argument("--parity-shape", default=None, metavar="HxW",
                   help="the untraced resolution parity checks with --dynamic hw/all (default: about 1.25x the "
                        "traced size, rounded to a multiple of 32, 64, 16 or 8: the first one eager accepts)")
    p.add_argument("--dynamic", choices=DYNAMIC_MODES, default="batch",
                   help="dynamic axes: batch (default), hw (height and width), all, none")
    p.add_argument("--exporter", choices=EXPORTERS, default=DEFAULT_EXPORTER,
                   help=f"PyTorch's ONNX exporter: torchscript (torch.onnx.export dynamo=False) or dynamo "
                        f"(torch.export); default {DEFAULT_EXPORTER}, measured faster with the same graphs (docs/guides/export.md)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET}, minimum 18)")
    p.add_argument("--no-simplify", dest="simplify", action="store_false", help="skip onnxsim")
    p.add_argument("--optimize", action=argparse.BooleanOptionalAction, default=True,
                   help="CBAM-aware graph rewrites after simplification, proven by the parity check (default on; "
                        "--no-optimize exports the graph as simplified)")
    p.add_argument("--rewrites", default=None, metavar="A,B",
                   help=f"which rewrites --optimize applies (default {','.join(DEFAULT_REWRITES)}; all: "
                        f"{','.join(REWRITE_NAMES)})")


def _precision_target_args(p: argparse.ArgumentParser) -> None:
    """Where the precision export runs and what stays float (their own group)."""
    g = p.add_argument_group("precision target")
    flavors = ", ".join(f"{t} {f}" for t, f in TARGET_INT8_FLAVOR.items())
    g.add_argument("--target", choices=TARGETS, default=DEFAULT_TARGET,
                   help=f"where the model will run (default {DEFAULT_TARGET}); INT8 is written in the Q/DQ flavor "
                        f"that target runs fast: {flavors} (u8s8: uint8 activations, int8 per-channel weights; s8s8: "
                        "symmetric int8, zero points 0, as TensorRT needs). Recorded in the metadata")
    g.add_argument("--calibration-method", choices=CALIBRATION_METHODS, default=DEFAULT_CALIBRATION_METHOD,
                   help="INT8: ONNX Runtime's calibration method (default: "
                        f"{', '.join(f'{m} for {f}' for f, m in FLAVOR_CALIBRATION_METHOD.items())}, measured on "
                        "the reference task: docs/guides/precision.md)")
    g.add_argument("--keep-float", default=None, metavar="MODULE[,MODULE]|auto",
                   help="fp16/int8: keep these PyTorch modules (e.g. layer1.0.cbam) in float, besides the attention "
                        "rule; 'auto' chooses them by measurement (fp16: tensors out of FP16's range; int8: the "
                        "fewest modules, worst error first, for the task gate)")


def print_list() -> None:
    from rich.console import Console
    from rich.table import Table

    from ..models import host_defaults
    from ..models.registry import HOSTS, VARIANTS

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


def _names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


def _shapes(args: argparse.Namespace) -> list[tuple[int, ...]] | None:
    if not args.input_shape:
        return None
    return [parse_shape(part) for given in args.input_shape for part in given.split(",") if part.strip()]


def _source(args: argparse.Namespace):
    """The model source the arguments name: the user's factory (--model) or a built-in host."""
    from ..api.export import BuiltinSource, FactorySource

    shapes = _shapes(args)
    if args.model:
        builtin_only = [f"--{n.replace('_', '-')}" for n in ("variant", "arch", "num_classes", "kernel_size", "ratio")
                        if getattr(args, n) is not None]
        if builtin_only:
            raise UsageError(f"{', '.join(builtin_only)} configure the built-in hosts; with --model, pass your "
                             "factory's arguments in --model-kwargs")
        from ..models.user_model import parse_model_kwargs

        return FactorySource(args.model, shapes or [], kwargs=parse_model_kwargs(args.model_kwargs),
                             weights=args.weights, classifier=args.classifier, seed=args.seed,
                             image_preprocessing=args.image_preprocessing)
    if args.image_preprocessing is not None:
        raise UsageError("--mean/--std/--image-size/--channel-order go with --model: the built-in hosts record "
                         "their own preprocessing")
    if args.model_kwargs or args.classifier:
        raise UsageError("--model-kwargs and --classifier go with --model")
    if shapes and len(shapes) != 1:
        raise UsageError(f"host {args.arch or DEFAULT_ARCH!r} takes one input; got {len(shapes)} --input-shape values")
    return BuiltinSource(arch=args.arch or DEFAULT_ARCH, variant=args.variant or DEFAULT_VARIANT, weights=args.weights,
                         num_classes=args.num_classes, ratio=args.ratio, kernel_size=args.kernel_size,
                         input_shape=shapes[0] if shapes else None, seed=args.seed)


def _options(args: argparse.Namespace):
    from ..api.export import ExportOptions

    optimize: bool | list[str] = args.optimize
    if args.rewrites is not None:
        rewrites = [r.strip() for r in args.rewrites.split(",") if r.strip()]
        unknown = [r for r in rewrites if r not in REWRITE_NAMES]
        if unknown or not args.optimize:
            raise UsageError(f"--rewrites: unknown {', '.join(unknown)}; valid: {', '.join(REWRITE_NAMES)}" if unknown
                             else "--rewrites goes with --optimize, not --no-optimize")
        optimize = rewrites
    parity_shape = None
    if args.parity_shape is not None:
        parity_shape = parse_shape(args.parity_shape)
        if len(parity_shape) != 2:
            raise UsageError(f"--parity-shape {args.parity_shape!r} must be HxW, e.g. 288x288")
    return ExportOptions(out=args.out, name=args.name, precision=args.precision, dynamic=args.dynamic,
                         exporter=args.exporter, opset=args.opset, simplify=args.simplify, optimize=optimize,
                         input_names=_names(args.input_names), output_names=_names(args.output_names),
                         keep_io_types=args.keep_io_types, calibration=args.calibration,
                         max_scaled_error=args.max_scaled_error, parity_shape=parity_shape, force=args.force,
                         seed=args.seed, target=args.target, calibration_method=args.calibration_method,
                         keep_float=_names(args.keep_float) or [])


def run(args: argparse.Namespace) -> int:
    if args.list:
        print_list()
        return EXIT_OK
    from ..api.export import export_source
    from ..progress import RichReporter

    options = _options(args)
    options.check()
    report = export_source(_source(args), options, reporter=RichReporter())
    print_summary(report, json_stdout=args.json)
    if args.json:
        from .render import print_json

        print_json(report.to_dict())
    return EXIT_OK


def print_summary(report, *, json_stdout: bool = False) -> None:
    """The parity table and what the export did, on the terminal (stderr when --json has stdout)."""
    from rich.table import Table

    from .render import console as render_console

    console = render_console(json_stdout)
    table = Table(title=f"parity: eager vs ONNX Runtime CPU ({report.parity.precision}, tolerance: scaled error "
                        f"<= {report.parity.tolerance.max_scaled_error:g}, cosine >= {report.parity.tolerance.min_cosine})")
    several = len(report.metadata.get("output_names", [])) > 1
    for col in ("case", *(("output",) if several else ()), "max abs err", "max rel err", "scaled err", "cosine",
                "top-1 agree", "result"):
        table.add_column(col)
    for case in report.parity.cases:
        for o in case.outputs:
            table.add_row(case.label, *((o.output,) if several else ()), f"{o.max_abs_error:.2e}",
                          f"{o.max_rel_error:.2e}", f"{o.scaled_error:.2e}", f"{o.cosine:.7f}",
                          "-" if o.top1_agreement is None else f"{o.top1_agreement:.3f}",
                          "[green]pass[/]" if o.passed else "[red]FAIL[/]")
    console.print(table)
    gate = report.parity_gate
    if gate.get("float32_floor") is not None:
        console.print(f"FP32 gate per case = max(table {gate['table']:g}, {gate['floor_multiple']:g} x float32 floor), "
                      "the floor being eager float32 against float64 on the case's inputs: "
                      + "; ".join(f"{label}: floor {c['float32_floor']:.2g}, gate {c['gate']:.3g}"
                                  for label, c in gate.get("cases", {}).items()))
    before = sum(report.ops_before_simplify.values())
    after = sum(report.ops_after_simplify.values())
    optimized = sum(report.ops_after_optimize.values())
    console.print(f"nodes: {before} exported ({report.metadata.get('exporter')} exporter) -> {after} after simplify "
                  f"-> {optimized} after CBAM rewrites; " + ", ".join(f"{k} {v}" for k, v in report.ops_after_optimize.items()))
    if any(report.optimize.applied.values()):
        console.print("rewrites: " + ", ".join(f"{k} x{v}" for k, v in report.optimize.applied.items() if v))
    fused = f" (+{len(report.fold.exporter_fused)} fused by the exporter)" if report.fold.exporter_fused else ""
    console.print(f"BatchNorms folded: {len(report.fold.folded)}{fused}; BatchNormalization nodes in graph: "
                  f"{report.ops_after_simplify.get('BatchNormalization', 0)}")
    _print_precision(console, report)
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


def _print_precision(console, report) -> None:
    """The target (always), what the precision stage did, and the modules kept in float and why."""
    meta = report.metadata
    details = meta.get("precision_details") or {}
    flavor = f", int8 flavor {meta['int8_flavor']} ({details.get('flavor_description', '')})" if meta.get("int8_flavor") else ""
    console.print(f"target: {meta.get('target', DEFAULT_TARGET)}{flavor}")
    if details and "kept_fp32_ops" in details:
        console.print(f"fp16: kept FP32 ({', '.join(details['why'])}): "
                      + ", ".join(f"{k} {v}" for k, v in details["kept_fp32_ops"].items())
                      + f"; {details['casts_inserted']} Cast nodes inserted")
    elif details:
        console.print(f"int8: {details['qdq_pairs']} QuantizeLinear nodes, calibration: {details['calibration']} "
                      f"({details.get('calibration_method')}); not quantized: "
                      + ", ".join(f"{why} ({n} nodes)" for why, n in details["excluded_nodes"].items()))
    for module, entry in (details.get("kept_float_modules") or {}).items():
        console.print(f"kept in float: [bold]{module}[/] ({entry['why']}: {entry['detail']})")
    auto = details.get("keep_float_auto")
    if auto:
        gate = ", ".join(f"{k} {v:.4g}" for k, v in auto["gate"].items() if k != "kept_float")
        cost = auto.get("speed_cost")
        console.print(f"--keep-float auto: gate {gate}" + (f"; speed cost {cost['slowdown']:.2f}x "
                                                            f"({cost['method']})" if cost else ""))


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("cbam-export", run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
