"""The model folder layout, in one place: where an export, a plan and their reports live.

    OUT/NAME/config.pbtxt          Triton's model configuration
    OUT/NAME/export.json           what the export did and measured (holds the ONNX file's SHA-256)
    OUT/NAME/1/model.onnx          the model (Triton's version folder "1")
    OUT/NAME/1/model.plan          a TensorRT plan (cbam-build), with model.plan.json beside it

Ground floor: imports nothing from the package but the standard library.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

VERSION_DIR = "1"
MODEL_FILE = "model.onnx"
PLAN_FILE = "model.plan"
SIDECAR_SUFFIX = ".json"  # model.plan -> model.plan.json
REPORT_FILE = "export.json"
CONFIG_FILE = "config.pbtxt"

#: The reference task's host and weights: a model folder is the reference model when its spec says so.
REFERENCE_ARCH = "resnet_mini"
REFERENCE_WEIGHTS = "reference"


def onnx_path(model_dir: str | Path) -> Path:
    """``model_dir/1/model.onnx``."""
    return Path(model_dir) / VERSION_DIR / MODEL_FILE


def plan_path(model_dir: str | Path) -> Path:
    """``model_dir/1/model.plan``."""
    return Path(model_dir) / VERSION_DIR / PLAN_FILE


def sidecar_path(plan: str | Path) -> Path:
    """``model.plan`` -> ``model.plan.json``: the build's record beside the plan (never inside it)."""
    plan = Path(plan)
    return plan.with_name(plan.name + SIDECAR_SUFFIX)


def report_path(model_dir: str | Path) -> Path:
    """``model_dir/export.json``."""
    return Path(model_dir) / REPORT_FILE


def config_path(model_dir: str | Path) -> Path:
    """``model_dir/config.pbtxt``."""
    return Path(model_dir) / CONFIG_FILE


def model_dir_of(onnx_file: str | Path) -> Path:
    """The model folder that holds ``.../NAME/1/model.onnx`` (its grandparent)."""
    return Path(onnx_file).parent.parent


def is_reference_task(metadata: Mapping[str, Any]) -> bool:
    """Whether an export's metadata describes the shipped reference model (resnet_mini, trained weights)."""
    spec = metadata.get("model_spec") or {}
    return spec.get("arch") == REFERENCE_ARCH and spec.get("weights") == REFERENCE_WEIGHTS
