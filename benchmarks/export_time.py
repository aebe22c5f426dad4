"""A full ``cbam-export`` against a bare dynamo ``torch.onnx.export`` of the same model, side by side.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/export_time.py --arch resnet50 --repeats 3

(On a machine shared with other jobs, OpenMP's busy-waiting threads lose their time slices and
inflate eager PyTorch's wall time many-fold; PASSIVE makes the figures repeatable.)

Per variant, interleaved in one process (so both see the same machine load): the bare export
(``torch.onnx.export(model, (x,), dynamo=True)`` with a dynamic batch, nothing else) and the real
command (``cbam_deploy.cli.export.main``: build, eager at the parity shapes, fold, export, simplify,
check, rewrites, parity, write) into a temporary folder. Prints medians of wall and CPU seconds
(CPU time is steadier on a shared machine), the command's per-stage split and the ratios command /
bare export. Imports are paid once per process and reported separately; both are warmed up once
(the first dynamo export in a process pays a one-off set-up).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import tempfile
import time

T0 = time.perf_counter()
import torch  # noqa: E402

from cbam_deploy.cli.export import main as export_main  # noqa: E402
from cbam_deploy.models import create_model, host_defaults, list_variants  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - T0


def bare_dynamo(arch: str, variant: str, seed: int) -> tuple[float, float]:
    """(wall, CPU) seconds of torch.onnx.export (dynamo) of the model the command builds, dynamic batch, opset 18."""
    torch.manual_seed(seed)
    model = create_model(arch, None if variant == "none" else variant).eval()
    x = torch.randn(*host_defaults(arch).input_shape).expand(2, -1, -1, -1).contiguous()
    batch = torch.export.Dim("batch", min=1, max=4096)
    start, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        torch.onnx.export(model, (x,), dynamo=True, opset_version=18, input_names=["input"],
                          dynamic_shapes=({0: batch},), optimize=True, verbose=False)
    return time.perf_counter() - start, time.process_time() - cpu


def command(arch: str, variant: str, extra: list[str]) -> dict[str, float]:
    """Wall and CPU seconds of the full command, and its stage timings (wall)."""
    with tempfile.TemporaryDirectory() as out:
        buffer = io.StringIO()
        start, cpu = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(io.StringIO()):
            code = export_main(["--arch", arch, "--variant", variant, "--weights", "random", "--out", out, "--json",
                                *extra])
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    if code != 0:
        sys.exit(f"cbam-export of {arch} + {variant} failed with exit code {code} (rerun it by hand to see why)")
    return {"wall": wall, "cpu": cpu, **json.loads(buffer.getvalue())["timings_s"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--variants", nargs="*", default=list_variants())
    p.add_argument("--exporter", default=None, help="pass --exporter to the command (default: its default)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", dest="json_out", default=None, help="also write the results here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    extra = ["--exporter", args.exporter] if args.exporter else []
    bare_dynamo(args.arch, args.variants[0], 0)  # warm-up: dynamo's one-off set-up
    command(args.arch, args.variants[0], extra)
    results = {}
    for variant in args.variants:
        bare, runs = [], []
        for _ in range(args.repeats):
            bare.append(bare_dynamo(args.arch, variant, 0))
            runs.append(command(args.arch, variant, extra))
        stages = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        bare_wall, bare_cpu = (statistics.median(b[i] for b in bare) for i in (0, 1))
        results[variant] = {"bare_dynamo_wall_s": bare_wall, "bare_dynamo_cpu_s": bare_cpu, "cbam_export": stages,
                            "ratio_wall": stages["wall"] / bare_wall, "ratio_cpu": stages["cpu"] / bare_cpu}
        print(f"{args.arch} + {variant:<12} median of {args.repeats}: bare dynamo export {bare_wall:.1f}s wall "
              f"({bare_cpu:.1f}s CPU); cbam-export {stages['wall']:.1f}s wall ({stages['cpu']:.1f}s CPU) = "
              f"{stages['wall'] / bare_wall:.2f}x wall, {stages['cpu'] / bare_cpu:.2f}x CPU  ("
              + ", ".join(f"{k} {v:.1f}s" for k, v in stages.items() if k not in ("wall", "cpu", "total")) + ")",
              flush=True)
    print(f"(imports, paid once per process: {IMPORT_SECONDS:.1f}s)")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"arch": args.arch, "repeats": args.repeats, "threads": args.threads, "import_s": IMPORT_SECONDS,
                       "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
