"""An exported model as the later stages see it: its ONNX file, metadata, I/O, and the eager model
it came from (rebuilt from the model spec stored in the metadata).

The one place that decides how a model folder is opened and trusted. A model folder is data:

- ``model.onnx`` is checked against the SHA-256 its ``export.json`` records (``verify``; a mismatch
  is an ``IntegrityError``, exit 1), before anything else reads it;
- code named in its metadata (a ``--model`` export's factory) is imported only with
  ``trust_model_code=True`` (``--trust-model-code``); without it :meth:`ExportedModel.eager_model`
  raises ``UntrustedCodeError`` naming the factory. Built-in hosts are rebuilt from the registry
  and need no trust.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from .errors import IntegrityError, UntrustedCodeError, UsageError
from .layout import MODEL_FILE, REPORT_FILE, VERSION_DIR
from .onnx_export.graph import io_signature
from .onnx_export.metadata import read_metadata

if TYPE_CHECKING:
    from .backends.base import TensorSpec

TRUST_HINT = "pass --trust-model-code (API: trust_model_code=True) only if you trust where this folder came from"


def _onnx_file(model: str | Path) -> Path:
    path = Path(model)
    if path.is_dir():
        path = path / VERSION_DIR / MODEL_FILE
    if not path.is_file():
        raise UsageError(f"{str(model)!r} is not an exported model (no {path})")
    return path


def recorded_sha256(onnx_file: Path) -> tuple[str | None, Path]:
    """The SHA-256 ``export.json`` records for ``NAME/1/model.onnx`` (None: no export.json, e.g. a
    bare .onnx file), and where that report is."""
    report = onnx_file.parent.parent / REPORT_FILE
    if onnx_file.name != MODEL_FILE or onnx_file.parent.name != VERSION_DIR or not report.is_file():
        return None, report
    try:
        sha = json.loads(report.read_text(encoding="utf-8")).get("sha256")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        raise IntegrityError(f"{str(report)!r} is not a readable export report, so {str(onnx_file)!r} cannot be "
                             "verified (--no-verify skips the check)") from None
    if not isinstance(sha, str) or len(sha) != 64:
        raise IntegrityError(f"{str(report)!r} records no SHA-256 for {str(onnx_file)!r} (--no-verify skips the check)")
    return sha.lower(), report


def _read_verified(path: Path, verify: bool) -> tuple[bytes, str]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        from .errors import from_os_error

        raise from_os_error(exc, "read") from None
    if not verify:
        return data, "skipped (--no-verify)"
    expected, report = recorded_sha256(path)
    if expected is None:
        return data, "unverified (no export.json beside it)"
    if hashlib.sha256(data).hexdigest() != expected:
        raise IntegrityError(f"{str(path)!r} does not match the SHA-256 recorded in {str(report)!r}: the file changed "
                             "or was corrupted after the export (re-export it; --no-verify skips the check)")
    return data, "sha256 verified"


def _parse(path: Path, data: bytes) -> onnx.ModelProto:
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as exc:  # protobuf's DecodeError and friends: the file is not ONNX
        raise UsageError(f"{str(path)!r} is not a readable ONNX model ({type(exc).__name__})") from None
    # Protobuf parses many byte strings (even empty ones) as a message: demand a real graph.
    if not proto.ir_version or not proto.graph.node or not proto.graph.input or not proto.graph.output:
        raise UsageError(f"{str(path)!r} is not an ONNX model (no graph, inputs or outputs)")
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        from onnx.external_data_helper import load_external_data_for_model

        try:
            load_external_data_for_model(proto, str(path.parent))
        except Exception as exc:  # a missing file, or a path outside the model's folder (refused by onnx)
            raise UsageError(f"{str(path)!r}: its external weight data cannot be read ({type(exc).__name__})") from None
    return proto


MAX_INPUT_SIDE = 16384  # pixels; an image side beyond this in metadata is a hostile folder, not a model


def _checked_preprocessing(pre: dict[str, Any], where: Path) -> dict[str, Any]:
    def bad(what: str) -> UsageError:
        return UsageError(f"{str(where)!r}: preprocessing {what} in its metadata is not valid ({pre.get(what)!r})")

    size = pre.get("input_size")
    if size is not None and (not isinstance(size, list) or len(size) != 2 or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_INPUT_SIDE for v in size)):
        raise bad("input_size")
    for key in ("mean", "std"):
        values = pre.get(key)
        if values is None:
            continue
        if not isinstance(values, list) or len(values) not in (1, 3) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in values):
            raise bad(key)
        if key == "std" and any(v <= 0 for v in values):
            raise bad(key)
    if pre.get("mean") is not None and pre.get("std") is not None and len(pre["mean"]) != len(pre["std"]):
        raise bad("mean")
    if pre.get("channel_order", "RGB") not in ("RGB", "BGR"):
        raise bad("channel_order")
    return pre


@dataclass
class ExportedModel:
    onnx_path: Path
    proto: onnx.ModelProto
    metadata: dict[str, Any]
    trust_model_code: bool = False
    integrity: str = "unverified"

    @classmethod
    def open(cls, model: "str | Path | ExportedModel", *, trust_model_code: bool = False,
             verify: bool = True) -> "ExportedModel":
        """``models/NAME`` (its version 1) or a ``.onnx`` file, checked and with its trust decided.

        ``verify``: check ``model.onnx`` against the SHA-256 in ``export.json`` (``IntegrityError`` on
        a mismatch). ``trust_model_code``: allow :meth:`eager_model` to import the factory a user
        model's metadata names. An ``ExportedModel`` passed in is returned as it is.
        """
        if isinstance(model, ExportedModel):
            return model
        path = _onnx_file(model)
        data, integrity = _read_verified(path, verify)
        proto = _parse(path, data)
        return cls(path, proto, read_metadata(proto), trust_model_code=trust_model_code, integrity=integrity)

    @property
    def model_code(self) -> str | None:
        """The Python factory this model's eager rebuild would import (None for built-in hosts)."""
        user = self.metadata.get("user_model")
        if not user:
            return None
        return str(user.get("factory")) if isinstance(user, dict) else str(user)

    @property
    def user_factory(self) -> str | None:
        """Alias of :attr:`model_code`."""
        return self.model_code

    @property
    def needs_trust(self) -> bool:
        """Whether rebuilding the eager model would import code the caller has not trusted."""
        return self.model_code is not None and not self.trust_model_code

    @property
    def name(self) -> str:
        return self.onnx_path.parent.parent.name

    @cached_property
    def signature(self) -> dict[str, list[dict[str, Any]]]:
        return io_signature(self.proto)

    @property
    def input_name(self) -> str:
        return str(self.signature["inputs"][0]["name"])

    @property
    def output_names(self) -> list[str]:
        return [str(o["name"]) for o in self.signature["outputs"]]

    @property
    def input_names(self) -> list[str]:
        return [str(i["name"]) for i in self.signature["inputs"]]

    @property
    def traced_shapes(self) -> list[tuple[int, ...]]:
        """Every input's example shape at export (from the metadata, else the graph's fixed dims)."""
        shapes = self.metadata.get("input_shapes")
        if shapes is not None and not (isinstance(shapes, list) and all(
                isinstance(s, list) and s and all(isinstance(d, int) and not isinstance(d, bool) and 0 < d <= 1 << 20
                                                  for d in s) for s in shapes)):
            raise UsageError(f"{str(self.onnx_path)!r}: 'input_shapes' in its metadata is not a list of shapes")
        if shapes and len(shapes) == len(self.signature["inputs"]):
            return [tuple(s) for s in shapes]
        return [tuple(d if isinstance(d, int) else 1 for d in i["shape"]) for i in self.signature["inputs"]]

    @property
    def traced_shape(self) -> tuple[int, ...]:
        return self.traced_shapes[0]

    def input_specs(self) -> list["TensorSpec"]:
        """Name, dtype and dims (None where dynamic) of every graph input."""
        from .backends.base import TensorSpec

        return [TensorSpec(str(i["name"]), np.dtype(str(i["dtype"])),
                           tuple(d if isinstance(d, int) else None for d in i["shape"])) for i in self.signature["inputs"]]

    def input_dynamic_axes(self) -> list[set[int]]:
        return [{k for k, d in enumerate(i["shape"]) if not isinstance(d, int)} for i in self.signature["inputs"]]

    @property
    def classes(self) -> list[str] | None:
        """Class names from the metadata (checked: a list of strings), or None."""
        classes = self.metadata.get("classes")
        if classes is not None and (not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)):
            raise UsageError(f"{str(self.onnx_path)!r}: 'classes' in its metadata is not a list of names")
        return classes

    @property
    def preprocessing(self) -> dict[str, Any]:
        """Image preprocessing from the metadata, checked: it is data from the folder, and a huge
        ``input_size`` or a zero ``std`` would otherwise exhaust memory or divide by zero."""
        pre = self.metadata.get("preprocessing") or {}
        if not isinstance(pre, dict):
            raise UsageError(f"{str(self.onnx_path)!r}: 'preprocessing' in its metadata is not a mapping")
        return _checked_preprocessing(pre, self.onnx_path)

    @property
    def is_reference_task(self) -> bool:
        spec = self.metadata.get("model_spec") or {}
        return spec.get("arch") == "resnet_mini" and spec.get("weights") == "reference"

    def dynamic_axes(self) -> set[int]:
        """The first input's dynamic axes."""
        return self.input_dynamic_axes()[0]

    def require_trust(self, purpose: str = "rebuild its eager PyTorch model") -> None:
        """Raise ``UntrustedCodeError`` if using this model for ``purpose`` would import untrusted code."""
        code = self.model_code
        if code is not None and not self.trust_model_code:
            raise UntrustedCodeError(f"to {purpose}, {str(self.onnx_path)!r} would import the Python factory "
                                     f"{code!r} named in its metadata; refused: {TRUST_HINT}")

    def eager_model(self):
        """The eval-mode PyTorch model this ONNX was exported from (weights re-loaded strictly).

        A user's model (``cbam-export --model``) is rebuilt by importing the factory recorded at
        export again, which runs that code: only when the model was opened with ``trust_model_code``.
        """
        self.require_trust()
        user = self.metadata.get("user_model")
        if user:
            return self._user_eager_model(user)
        from .models.spec import ModelSpec, build_model

        spec = self.metadata.get("model_spec")
        if not isinstance(spec, dict) or not spec:
            raise UsageError(f"{self.onnx_path} carries no model spec in its metadata: the eager model cannot be rebuilt")
        try:
            model_spec = ModelSpec(**spec)
        except TypeError:
            raise UsageError(f"{self.onnx_path}: the model spec in its metadata is not valid ({sorted(spec)})") from None
        built = build_model(model_spec)
        expected = self.metadata.get("checkpoint_sha256", "")
        if built.checkpoint_sha256 and expected and built.checkpoint_sha256 != expected:
            raise UsageError(f"checkpoint {built.checkpoint_path} changed since the export (SHA-256 differs)")
        return built.model

    def _user_eager_model(self, user: Any):
        from .models.user_model import UserModelSpec, build_user_model, state_sha256

        try:
            spec = UserModelSpec(**user)
        except TypeError:
            raise UsageError(f"{self.onnx_path}: the user model in its metadata is not valid") from None
        built_user = build_user_model(spec)
        expected = self.metadata.get("state_sha256")
        if expected and state_sha256(built_user.model) != expected:
            source = user.get("weights") or f"{user['factory']} (seed {user.get('seed', 0)})"
            raise UsageError(f"the model rebuilt from {source} does not have the exported weights (state "
                             "SHA-256 differs): the checkpoint or the factory changed since the export, or the "
                             "factory initialises weights non-deterministically")
        return built_user.model

    def eager_runner(self, module=None):
        """A TorchRunner over ``module`` (e.g. the user's model in memory), else the rebuilt eager model."""
        from .backends.base import TensorSpec
        from .backends.torch_eager import TorchRunner

        if module is not None and module.training:
            raise UsageError("the eager model is in training mode; call model.eval() first")
        # Eager always takes float32, whatever the graph's I/O precision.
        specs = [TensorSpec(s.name, np.dtype(np.float32), s.shape) for s in self.input_specs()]
        return TorchRunner(module if module is not None else self.eager_model(), specs, self.output_names)
