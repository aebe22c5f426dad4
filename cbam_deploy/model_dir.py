"""An exported model as the later stages see it: its ONNX file, metadata, I/O, and the eager model
it came from (rebuilt from the model spec stored in the metadata)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from .errors import UsageError
from .export.graph import io_signature
from .export.metadata import read_metadata


@dataclass
class ExportedModel:
    onnx_path: Path
    proto: onnx.ModelProto
    metadata: dict[str, Any]

    @classmethod
    def open(cls, model: str | Path) -> "ExportedModel":
        """``models/NAME`` (its version 1) or a ``.onnx`` file."""
        path = Path(model)
        if path.is_dir():
            path = path / "1" / "model.onnx"
        if not path.is_file():
            raise UsageError(f"{str(model)!r} is not an exported model (no {path})")
        try:
            proto = onnx.load(str(path))
        except Exception as exc:
            raise UsageError(f"{str(path)!r} is not a readable ONNX model ({type(exc).__name__})") from None
        return cls(path, proto, read_metadata(proto))

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
    def traced_shape(self) -> tuple[int, ...]:
        shapes = self.metadata.get("input_shapes")
        if shapes:
            return tuple(shapes[0])
        return tuple(d if isinstance(d, int) else 1 for d in self.signature["inputs"][0]["shape"])

    @property
    def classes(self) -> list[str] | None:
        return self.metadata.get("classes")

    @property
    def preprocessing(self) -> dict[str, Any]:
        return self.metadata.get("preprocessing") or {}

    @property
    def is_reference_task(self) -> bool:
        spec = self.metadata.get("model_spec") or {}
        return spec.get("arch") == "resnet_mini" and spec.get("weights") == "reference"

    def dynamic_axes(self) -> set[int]:
        return {i for i, d in enumerate(self.signature["inputs"][0]["shape"]) if not isinstance(d, int)}

    def eager_model(self):
        """The eval-mode PyTorch model this ONNX was exported from (weights re-loaded strictly)."""
        from .models.spec import ModelSpec, build_model

        spec = self.metadata.get("model_spec")
        if not spec:
            raise UsageError(f"{self.onnx_path} carries no model spec in its metadata: the eager model cannot be rebuilt")
        built = build_model(ModelSpec(**spec))
        expected = self.metadata.get("checkpoint_sha256", "")
        if built.checkpoint_sha256 and expected and built.checkpoint_sha256 != expected:
            raise UsageError(f"checkpoint {built.checkpoint_path} changed since the export (SHA-256 differs)")
        return built.model

    def eager_runner(self):
        from .backends.base import TensorSpec
        from .backends.torch_eager import TorchRunner

        dims = tuple(None if not isinstance(d, int) else d for d in self.signature["inputs"][0]["shape"])
        return TorchRunner(self.eager_model(), [TensorSpec(self.input_name, np.dtype(np.float32), dims)], self.output_names)
