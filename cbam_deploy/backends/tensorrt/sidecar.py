"""The JSON sidecar beside a plan file: what built it, where, for what. A plan is tied to its
TensorRT version and GPU architecture; loading checks both and refuses a mismatch. The plan file
itself stays a plain TensorRT plan (trtexec loads it): nothing of ours is written into it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ...artifacts import atomic_write_text
from ...errors import UsageError
from ...layout import SIDECAR_SUFFIX, sidecar_path  # noqa: F401  (the layout lives in one module)


@dataclass
class PlanSidecar:
    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "9.0"
    precision: str
    profiles: list[dict[str, dict[str, list[int]]]]
    onnx_sha256: str
    plan_sha256: str
    build_seconds: float
    workspace_bytes: int | None = None
    strongly_typed: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str = "sidecar") -> "PlanSidecar":
        try:
            data = json.loads(text)
            return cls(**data)
        except (json.JSONDecodeError, TypeError) as exc:
            raise UsageError(f"{source} is not a cbam-deploy plan sidecar ({str(exc).splitlines()[0]})") from None


def write_sidecar(plan: str | Path, sidecar: PlanSidecar) -> Path:
    path = sidecar_path(plan)
    atomic_write_text(path, sidecar.to_json())
    return path


def read_sidecar(plan: str | Path) -> PlanSidecar:
    path = sidecar_path(plan)
    if not path.is_file():
        raise UsageError(f"no sidecar {str(path)!r} beside the plan: cannot tell which TensorRT and GPU built it; "
                         "rebuild it with cbam-build")
    return PlanSidecar.from_json(path.read_text(), source=str(path))


def major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def check_compatible(sidecar: PlanSidecar, *, tensorrt_version: str, gpu_name: str, compute_capability: str,
                     plan: str = "the plan") -> None:
    """Refuse a plan built by another TensorRT (major.minor) or for another GPU architecture."""
    problems = []
    if major_minor(sidecar.tensorrt_version) != major_minor(tensorrt_version):
        problems.append(f"built with TensorRT {sidecar.tensorrt_version}, this is TensorRT {tensorrt_version}")
    if sidecar.compute_capability != compute_capability:
        problems.append(f"built for {sidecar.gpu_name} (compute capability {sidecar.compute_capability}), "
                        f"this GPU is {gpu_name} ({compute_capability})")
    if problems:
        raise UsageError(f"{plan} cannot run here: {'; '.join(problems)}; rebuild it here with cbam-build")
