"""TensorRT backend: profile derivation, plan sidecar, builder (loader) and runner.

``tensorrt`` is imported lazily: importing this package works everywhere; building or running a
plan without TensorRT or a GPU raises ``MissingDependencyError`` naming what is missing.
"""

from .profiles import Profile, derive_profile, parse_shape_spec
from .sidecar import PlanSidecar, check_compatible, read_sidecar, sidecar_path, write_sidecar

__all__ = ["PlanSidecar", "Profile", "check_compatible", "derive_profile", "parse_shape_spec", "read_sidecar",
           "sidecar_path", "write_sidecar"]
