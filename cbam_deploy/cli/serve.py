"""``cbam-serve``: serve an exported model through a real Triton Inference Server (PyTriton)."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..serving.options import DEFAULT_EXIT_TIMEOUT_S, DEFAULT_QUEUE_DELAY_US, SERVE_BACKENDS
from ..serving.triton_config import DEFAULT_MAX_BATCH
from .args import add_force_arg
from .common import EXIT_OK, ArgumentParser, add_debug_flag, run_command


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="cbam-serve",
        description="Serve an exported model (models/NAME) with Triton Inference Server: PyTriton starts the "
                    "tritonserver it carries, and requests reach a cbam-deploy runner (ONNX Runtime CPU by default; "
                    "CUDA, TensorRT-EP or a TensorRT plan where present) in batches the dynamic batcher assembles. "
                    "Each request is checked on its own: a malformed one (wrong name, dtype or shape, batch over "
                    "the maximum, NaN/Inf) gets its own HTTP 400 / gRPC INVALID_ARGUMENT and never fails the good "
                    "requests batched with it. Clients use tritonclient (HTTP or gRPC) with the model's input and "
                    "output names. SIGTERM, SIGINT or Ctrl-C: readiness goes false, in-flight requests finish, "
                    "Triton stops, exit 0; a second signal stops at once.",
        epilog="Example: cbam-serve models/original_resnet_mini --http-port 8000 --grpc-port 8001. "
               "Load test (good and malformed requests, HTTP and gRPC): python benchmarks/serve_load.py "
               "--model-dir models/original_resnet_mini")
    p.add_argument("model", help="an exported model folder (models/NAME) or .onnx file")
    p.add_argument("--backend", choices=SERVE_BACKENDS, default="onnxruntime-cpu", help="runner behind Triton (default onnxruntime-cpu)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--http-port", type=int, default=8000, help="HTTP port (default 8000)")
    p.add_argument("--grpc-port", type=int, default=8001, help="gRPC port (default 8001)")
    p.add_argument("--metrics-port", type=int, default=8002, help="Prometheus metrics port (default 8002)")
    p.add_argument("--max-batch-size", type=int, default=DEFAULT_MAX_BATCH,
                   help=f"largest batch Triton assembles (default {DEFAULT_MAX_BATCH}; needs a dynamic batch axis)")
    p.add_argument("--dynamic-batching", action=argparse.BooleanOptionalAction, default=True,
                   help="let Triton combine concurrent requests into one batch (default on)")
    p.add_argument("--max-queue-delay-us", type=int, default=DEFAULT_QUEUE_DELAY_US,
                   help=f"how long a request may wait for others to batch with (default {DEFAULT_QUEUE_DELAY_US} "
                        "microseconds)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op / OpenVINO inference threads "
                                                             "(default: all cores)")
    p.add_argument("--optimized-cache", default=None, metavar="PATH",
                   help="ONNX Runtime backends: save ONNX Runtime's optimized graph here on first start and load it "
                        "afterwards (faster cold start; rebuilt when the model, ONNX Runtime or provider changes)")
    p.add_argument("--instances", type=int, default=1, help="model instances (parallel executions, default 1)")
    p.add_argument("--exit-timeout", type=int, default=DEFAULT_EXIT_TIMEOUT_S, metavar="SECONDS",
                   help=f"on SIGTERM/SIGINT, how long in-flight requests may take to finish (default "
                        f"{DEFAULT_EXIT_TIMEOUT_S})")
    p.add_argument("--write-triton-openvino", default=None, metavar="DIR",
                   help="instead of serving: write DIR/NAME_openvino (config.pbtxt + 1/model.onnx) for Triton's own "
                        "OpenVINO backend (Triton's NGC containers; PyTriton's tritonserver has no OpenVINO backend) "
                        "and exit. --threads goes into its config; --force overwrites")
    add_force_arg(p, "with --write-triton-openvino: overwrite the folder")
    p.add_argument("--log-verbose", type=int, default=0,
                   help="Triton's log verbosity (default 0: warnings, errors and one line per rejected request)")
    add_debug_flag(p)
    return p


def run(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..serving.server import ServeOptions, serve

    for port in (args.http_port, args.grpc_port, args.metrics_port):
        if not 0 < port < 65536:
            raise UsageError(f"port {port} is out of range 1-65535")
    if len({args.http_port, args.grpc_port, args.metrics_port}) != 3:
        raise UsageError("--http-port, --grpc-port and --metrics-port must differ")
    if args.max_batch_size < 0 or args.instances < 1 or args.max_queue_delay_us < 0 or args.exit_timeout < 0:
        raise UsageError("--max-batch-size, --max-queue-delay-us and --exit-timeout must not be negative, "
                         "--instances at least 1")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    if args.log_verbose < 0:
        raise UsageError(f"--log-verbose must not be negative, got {args.log_verbose}")
    if args.write_triton_openvino is not None:
        from ..serving.triton_openvino import write_openvino_model

        folder = write_openvino_model(args.model, args.write_triton_openvino, threads=args.threads, force=args.force)
        print(f"wrote {folder}/config.pbtxt and {folder}/1/model.onnx for Triton's OpenVINO backend (not loadable by "
              "PyTriton's tritonserver; serve it from a Triton NGC container)", file=sys.stderr)
        return EXIT_OK
    if args.backend == "openvino" and args.optimized_cache:
        raise UsageError("--optimized-cache is ONNX Runtime's; --backend openvino caches compiled models itself "
                         "(in ~/.cache/cbam-deploy/openvino, or $CBAM_DEPLOY_OPENVINO_CACHE: a folder, or off)")
    options = ServeOptions(backend=args.backend, host=args.host, http_port=args.http_port, grpc_port=args.grpc_port,
                           metrics_port=args.metrics_port, max_batch_size=args.max_batch_size,
                           dynamic_batching=args.dynamic_batching, max_queue_delay_us=args.max_queue_delay_us,
                           threads=args.threads, instances=args.instances, log_verbose=args.log_verbose,
                           optimized_cache=args.optimized_cache, exit_timeout_s=args.exit_timeout)

    def ready(name: str) -> None:
        batching = (f"dynamic batching up to {args.max_batch_size}, queue delay {args.max_queue_delay_us} us"
                    if args.dynamic_batching else "dynamic batching off")
        print(f"cbam-serve: serving {name!r} ({args.backend}; {batching}) on http://{args.host}:{args.http_port} "
              f"and grpc {args.host}:{args.grpc_port}; metrics on :{args.metrics_port}. Ctrl-C to stop.",
              file=sys.stderr, flush=True)

    serve(args.model, options, on_ready=ready)
    print("cbam-serve: stopped", file=sys.stderr, flush=True)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("cbam-serve", run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
