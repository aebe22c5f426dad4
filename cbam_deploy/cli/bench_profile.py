"""``cbam-bench --profile``: the options, and the run that profiles, renders and writes the reports."""

from __future__ import annotations

import argparse

from ..errors import UsageError
from .args import ArgGroup
from .common import EXIT_OK

PROFILE_BACKENDS = ("onnxruntime-cpu", "onnxruntime-cuda", "openvino")


class ProfileArgs(ArgGroup):
    """``--profile`` and ``--ablation`` (which belongs to a profile)."""

    def add(self, p: argparse.ArgumentParser) -> None:
        g = p.add_argument_group("profile (where the latency goes, by PyTorch module and attention block)")
        g.add_argument("--profile", action="store_true",
                       help="profile one configuration instead of benchmarking: each node the runtime ran is "
                            "attributed to a PyTorch module (rule printed with the result), each attention block "
                            "split into channel attention, spatial attention and gating, against the unprofiled "
                            "latency timed in the same rounds")
        g.add_argument("--ablation", choices=("network", "stages"), default=None,
                       help="also time the export with its attention bypassed in the graph (network), and per "
                            "stage (stages), interleaved with the profile: the measured attention share beside "
                            "the attributed one")

    def parse(self, args: argparse.Namespace) -> None:
        if args.ablation and not args.profile:
            raise UsageError("--ablation belongs to a profile: add --profile")


def _backend(args: argparse.Namespace) -> str:
    """The one runtime a profile measures: --backends NAME (the names cbam-validate takes), else
    ONNX Runtime on --provider."""
    if args.backends is not None:
        if len(args.backends) != 1 or args.backends[0] not in PROFILE_BACKENDS:
            raise UsageError(f"--profile measures one backend: --backends one of {', '.join(PROFILE_BACKENDS)}, "
                             f"got {','.join(args.backends)!r}")
        return args.backends[0]
    if args.provider == "tensorrt":
        raise UsageError("--profile with --provider tensorrt is not supported: profile the TensorRT engine on a GPU "
                         "machine (cbam_deploy.profiling.tensorrt), or use --provider cpu or cuda")
    return f"onnxruntime-{args.provider}"


def run_profile(args: argparse.Namespace, precisions: list[str]) -> int:
    from ..api.bench import profile
    from ..api.calibration import calibration_for
    from ..model_dir import ExportedModel
    from .render import console, print_json, write_reports

    if len(precisions) != 1:
        raise UsageError(f"--profile takes one precision, got {','.join(precisions)}")
    batches = [1] if args.batch_sizes is None else args.batch_sizes
    if len(batches) != 1:
        raise UsageError(f"--profile takes one batch size, got {','.join(map(str, batches))}")
    if args.bare:
        raise UsageError("--bare times a bare session beside a benchmark; it has no meaning with --profile")
    backend = _backend(args)
    if args.plot:
        from ..profiling.plot import require_matplotlib

        require_matplotlib()
    model = ExportedModel.open(args.model, trust_model_code=args.trust_model_code, verify=args.verify)
    calibration = calibration_for(model, args.calibration, required=True)[0] if precisions[0] == "int8" else None
    err = console(True)
    with err.status(f"profiling {model.name} on {backend}"):
        report = profile(model, backend=backend, precision=precisions[0], batch=batches[0], threads=args.threads,
                         warmup=5 if args.warmup is None else args.warmup, runs=30 if args.runs is None else args.runs,
                         ablation=args.ablation, calibration=calibration, optimization_level=args.optimization_level)
    plot = None
    if args.plot:
        from ..profiling.plot import plot_png

        plot = plot_png(report)  # before any file is written: a missing extra leaves nothing half-done
    console(args.json).print(report.rich_table())
    result = report.to_dict()
    if args.json:
        print_json(result)
    write_reports(args, result)
    from ..artifacts import atomic_write_bytes, atomic_write_text

    if args.markdown:
        atomic_write_text(args.markdown, report.to_markdown())
    if plot is not None:
        atomic_write_bytes(args.plot, plot)
        err.print(f"wrote {args.plot}")
    return EXIT_OK
