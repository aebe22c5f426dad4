"""``build``: a TensorRT plan and its sidecar from an exported model, the one place both are written.

``cbam-build`` calls :func:`build`; ``cbam-validate``'s tensorrt cells call :func:`open_cell_runner`
(which builds through :func:`write_plan` too); ``cbam-gpu-check`` calls both. The engine itself is
built by Polygraphy's loaders (``backends.tensorrt.loader``); what is ours is the profile from the
ONNX's dynamic axes and the sidecar (TensorRT version, GPU, precision, profile, SHA-256s).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from ..backends.tensorrt.profiles import DEFAULT_MAX_BATCH, Profile, derive_profile
from ..errors import CheckFailedError, MissingDependencyError, UsageError
from ..layout import PLAN_FILE, VERSION_DIR, plan_path
from ..progress import SilentReporter, StageReporter
from ..shapes import parse_named_shapes


@dataclass
class PlanBuild:
    """A plan written with its sidecar."""

    plan: Path
    sidecar: Any  # backends.tensorrt.PlanSidecar
    size_bytes: int
    seconds: float


@dataclass
class BuildReport:
    """What ``cbam-build`` made and measured."""

    plan: Path
    sidecar: dict[str, Any]
    parity: Any  # compare.ParityReport
    size_bytes: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"plan": str(self.plan), "sidecar": self.sidecar, "parity": self.parity.to_dict(),
                "size_bytes": self.size_bytes, "build_seconds": round(self.seconds, 2)}


def plan_profile(model, *, max_batch: int = DEFAULT_MAX_BATCH, min_shape: str | None = None,
                 opt_shape: str | None = None, max_shape: str | None = None) -> Profile:
    """The optimization profile for an opened export: derived from its dynamic axes and traced
    shapes, overridden by ``min/opt/max_shape`` texts ('1x3x64x64' or 'input:1x3x64x64,...')."""
    if max_batch <= 0:
        raise UsageError(f"--max-batch must be positive, got {max_batch}")
    names = model.input_names
    traced = dict(zip(names, model.traced_shapes))

    def given(text: str | None) -> dict[str, tuple[int, ...]] | None:
        return parse_named_shapes(text, names) if text else None

    return derive_profile(model.signature["inputs"], traced_shapes=traced, max_batch=max_batch,
                          min_shapes=given(min_shape), opt_shapes=given(opt_shape), max_shapes=given(max_shape))


def profile_for_cases(model, cases: Sequence[tuple[str, Sequence[tuple[int, ...]]]]) -> Profile:
    """The smallest profile that holds every case's shapes (opt = the largest), for validation."""
    lo: dict[str, tuple[int, ...]] = {}
    hi: dict[str, tuple[int, ...]] = {}
    for k, name in enumerate(model.input_names):
        shapes = [case_shapes[k] for _, case_shapes in cases]
        lo[name] = tuple(min(s[i] for s in shapes) for i in range(len(shapes[0])))
        hi[name] = tuple(max(s[i] for s in shapes) for i in range(len(shapes[0])))
    return derive_profile(model.signature["inputs"], min_shapes=lo, opt_shapes=hi, max_shapes=hi)


def write_plan(onnx_file: Path, profile: Profile, plan: Path, *, precision: str, metadata: dict[str, Any],
               workspace_bytes: int | None = None, timing_cache: str | Path | None = None) -> PlanBuild:
    """Build the engine from ``onnx_file`` and write ``plan`` (a plain TensorRT plan: trtexec loads it)
    and its sidecar beside it. Refuses with one line when TensorRT or a GPU is missing."""
    from ..artifacts import atomic_write_bytes
    from ..backends.tensorrt import PlanSidecar, write_sidecar
    from ..backends.tensorrt.environment import detect
    from ..backends.tensorrt.loader import build_plan

    env = detect()
    result = build_plan(onnx_file, profile, workspace_bytes=workspace_bytes, timing_cache=timing_cache)
    atomic_write_bytes(plan, result.plan)
    sidecar = PlanSidecar(
        tensorrt_version=env.tensorrt_version, gpu_name=env.gpu_name, compute_capability=env.compute_capability,
        precision=precision, profiles=[profile.to_dict()],
        onnx_sha256=hashlib.sha256(Path(onnx_file).read_bytes()).hexdigest(),
        plan_sha256=hashlib.sha256(result.plan).hexdigest(), build_seconds=round(result.seconds, 2),
        workspace_bytes=workspace_bytes,
        extra={"source_onnx": str(onnx_file), "driver_version": env.driver_version,
               "cuda_runtime_version": env.cuda_runtime_version, "metadata": metadata})
    write_sidecar(plan, sidecar)
    return PlanBuild(plan, sidecar, len(result.plan), result.seconds)


def open_cell_runner(backend: str, data: bytes, model, cases, workdir: Path, **options: Any):
    """An inactive runner for one validation cell: ONNX Runtime over ``data`` (the cell's ONNX bytes),
    or a TensorRT engine built from them for a profile that holds every case. A backend that cannot
    run here raises ``MissingDependencyError`` with the one-line reason, before anything is built."""
    from ..backends import backend_problem, get_backend, open_runner

    problem = backend_problem(backend)
    if problem:
        raise MissingDependencyError(problem)
    if get_backend(backend).runs != "plan":
        return open_runner(backend, data, **options)
    stem = hashlib.sha256(data).hexdigest()[:16]
    onnx_file = workdir / f"{stem}.onnx"
    onnx_file.write_bytes(data)
    built = write_plan(onnx_file, profile_for_cases(model, cases), workdir / f"{stem}.plan",
                       precision="", metadata={})
    return open_runner(backend, built.plan)


def tensorrt_parity(plan: Path, exported, reference, profile: Profile):
    """Eager against the engine, at shapes inside the profile (opt, batch 3, max batch at min size)."""
    from ..backends import open_runner
    from ..compare import compare_runners, tolerance_for
    from ..compare.cases import random_feed

    precision = str(exported.metadata.get("precision", "fp32"))
    lo, opt, hi = profile.shapes[exported.input_name]
    shapes = {tuple(opt), (min(hi[0], 3), *opt[1:]), tuple(hi[:1]) + tuple(lo[1:])}
    cases = [(" x ".join(map(str, s)), [s]) for s in sorted(shapes)]
    with open_runner("tensorrt", plan) as engine:
        return compare_runners(reference, engine, cases, backend="tensorrt", precision=precision,
                               tolerance=tolerance_for(precision), classifier=True,  # top-1 only for 2-D outputs
                               make_feed=random_feed)


def check_build_flavor(metadata: dict[str, Any]) -> None:
    """TensorRT builds symmetric int8 Q/DQ (zero points 0) only: refuse another target's INT8 flavor
    in one line saying what to run instead. Exports older than --target are s8s8."""
    from ..options import TARGET_INT8_FLAVOR

    flavor = metadata.get("int8_flavor", "s8s8")
    if metadata.get("precision") == "int8" and flavor != TARGET_INT8_FLAVOR["tensorrt"]:
        raise UsageError(f"this INT8 model was exported for --target {metadata.get('target', '?')} ({flavor} Q/DQ: uint8 "
                         "activations with zero points TensorRT cannot build); re-export it for TensorRT: cbam-export "
                         "... --precision int8 --target tensorrt")


def build(model: str | Path, *, out: str | Path = "models", name: str | None = None, force: bool = False,
          max_batch: int = DEFAULT_MAX_BATCH, min_shape: str | None = None, opt_shape: str | None = None,
          max_shape: str | None = None, workspace_mib: int | None = None, timing_cache: str | Path | None = None,
          trust_model_code: bool = False, verify: bool = True,
          reporter: StageReporter | None = None) -> BuildReport:
    """Build ``OUT/NAME/1/model.plan`` (+ sidecar, Triton config) from an export and prove parity
    against eager; on a parity failure nothing is written (``CheckFailedError``)."""
    from ..artifacts import staged_directory
    from ..backends.tensorrt.environment import detect
    from ..model_dir import ExportedModel

    reporter = reporter or SilentReporter()
    if workspace_mib is not None and workspace_mib <= 0:
        raise UsageError(f"--workspace must be a positive number of MiB, got {workspace_mib}")
    exported = ExportedModel.open(model, trust_model_code=trust_model_code, verify=verify)
    check_build_flavor(exported.metadata)
    profile = plan_profile(exported, max_batch=max_batch, min_shape=min_shape, opt_shape=opt_shape,
                           max_shape=max_shape)
    name = name or f"{exported.name}_trt"
    target = Path(out) / name
    if target.exists() and not force:
        raise UsageError(f"{str(target)!r} already exists; pass --force to overwrite it")
    env = detect()  # one line and exit 3 when TensorRT or the GPU is missing, before anything is written
    reference = exported.eager_runner()  # before the (long) build: the eager model must be rebuildable
    with staged_directory(target, force=force) as staging:
        (staging / VERSION_DIR).mkdir()
        with reporter.stage("build", f"TensorRT {env.tensorrt_version} on {env.gpu_name}"):
            built = write_plan(exported.onnx_path, profile, plan_path(staging),
                               precision=str(exported.metadata.get("precision", "fp32")), metadata=exported.metadata,
                               workspace_bytes=workspace_mib * 2**20 if workspace_mib else None,
                               timing_cache=timing_cache)
        _write_triton_config(staging, name, exported, profile)
        with reporter.stage("parity", "eager vs TensorRT"), reference:
            parity = tensorrt_parity(built.plan, exported, reference, profile)
        if not parity.passed:
            raise CheckFailedError("TensorRT parity against eager failed, nothing written: " + "; ".join(parity.failures()))
    return BuildReport(target / VERSION_DIR / PLAN_FILE, asdict(built.sidecar), parity, built.size_bytes, built.seconds)


def _write_triton_config(folder: Path, name: str, exported, profile: Profile) -> None:
    from ..serving.triton_config import build_config, write_config

    max_batch = min(hi[0] for _, _, hi in profile.shapes.values())  # Triton may batch up to every input's max
    write_config(folder, build_config(name, exported.signature, kind="plan", max_batch_size=max_batch,
                                      metadata=exported.metadata))
