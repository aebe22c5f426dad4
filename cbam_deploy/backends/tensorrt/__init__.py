"""TensorRT backend: profile derivation, plan sidecar, loaders (Polygraphy's) and runner.

``tensorrt`` and ``polygraphy`` are imported lazily: importing this package works everywhere;
building or running a plan without TensorRT or a GPU raises ``MissingDependencyError`` naming
what is missing.
"""

from .profiles import Profile, derive_profile, parse_shape_spec
from .sidecar import PlanSidecar, check_compatible, read_sidecar, sidecar_path, write_sidecar

__all__ = ["PlanSidecar", "Profile", "check_compatible", "derive_profile", "parse_shape_spec", "read_sidecar",
           "sidecar_path", "write_sidecar"]
