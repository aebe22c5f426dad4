"""What an exported model says about itself: ONNX ``metadata_props`` and the JSON report.

Keys in ``metadata_props`` are prefixed ``cbam_deploy.``; values are strings (JSON for lists and
dicts). The ONNX file's own SHA-256 cannot live inside the file: it is in ``export.json``.
"""

from __future__ import annotations

import json
import platform
from importlib import metadata as importlib_metadata
from typing import Any, Mapping

import onnx

PREFIX = "cbam_deploy."


def package_versions() -> dict[str, str]:
    """Versions of the packages an export depends on (``not installed`` where absent)."""
    versions = {}
    for dist, key in (("cbam-deploy", "cbam_deploy"), ("torch", "torch"), ("onnx", "onnx"),
                      ("onnxruntime", "onnxruntime"), ("onnxruntime-gpu", "onnxruntime"),
                      ("onnxsim", "onnxsim"), ("onnxscript", "onnxscript")):
        try:
            versions[key] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            versions.setdefault(key, "not installed")
    versions["python"] = platform.python_version()
    return versions


def set_metadata(model: onnx.ModelProto, values: Mapping[str, Any]) -> None:
    """Replace our keys in ``model.metadata_props`` with ``values``."""
    keep = [p for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in values.items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        model.metadata_props.add(key=PREFIX + key, value=text)


def read_metadata(model: onnx.ModelProto) -> dict[str, Any]:
    """Our ``metadata_props`` as Python values (JSON decoded where it parses)."""
    out: dict[str, Any] = {}
    for prop in model.metadata_props:
        if prop.key.startswith(PREFIX):
            try:
                out[prop.key[len(PREFIX):]] = json.loads(prop.value)
            except json.JSONDecodeError:
                out[prop.key[len(PREFIX):]] = prop.value
    return out
