"""An exported model as the later stages see it: its ONNX file, metadata, I/O, and the eager model
it came from (rebuilt from the model spec stored in the metadata)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from .errors import UsageError
from .onnx_export.graph import io_signature
from .onnx_export.metadata import read_metadata

if TYPE_CHECKING:
    from .backends.base import TensorSpec


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
    def input_names(self) -> list[str]:
        return [str(i["name"]) for i in self.signature["inputs"]]

    @property
    def traced_shapes(self) -> list[tuple[int, ...]]:
        """Every input's example shape at export (from the metadata, else the graph's fixed dims)."""
        shapes = self.metadata.get("input_shapes")
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
        return self.metadata.get("classes")

    @property
    def preprocessing(self) -> dict[str, Any]:
        return self.metadata.get("preprocessing") or {}

    @property
    def is_reference_task(self) -> bool:
        spec = self.metadata.get("model_spec") or {}
        return spec.get("arch") == "resnet_mini" and spec.get("weights") == "reference"

    def dynamic_axes(self) -> set[int]:
        """The first input's dynamic axes."""
        return self.input_dynamic_axes()[0]

    def eager_model(self):
        """The eval-mode PyTorch model this ONNX was exported from (weights re-loaded strictly).

        A user's model (``cbam-export --model``) is rebuilt by importing the factory recorded at
        export again: that runs the user's code, as the export did.
        """
        from .models.spec import ModelSpec, build_model

        user = self.metadata.get("user_model")
        if user:
            from .models.user_model import UserModelSpec, build_user_model, state_sha256

            built_user = build_user_model(UserModelSpec(**user))
            expected = self.metadata.get("state_sha256")
            if expected and state_sha256(built_user.model) != expected:
                source = user.get("weights") or f"{user['factory']} (seed {user.get('seed', 0)})"
                raise UsageError(f"the model rebuilt from {source} does not have the exported weights (state "
                                 "SHA-256 differs): the checkpoint or the factory changed since the export, or the "
                                 "factory initialises weights non-deterministically")
            return built_user.model
        spec = self.metadata.get("model_spec")
        if not spec:
            raise UsageError(f"{self.onnx_path} carries no model spec in its metadata: the eager model cannot be rebuilt")
        built = build_model(ModelSpec(**spec))
        expected = self.metadata.get("checkpoint_sha256", "")
        if built.checkpoint_sha256 and expected and built.checkpoint_sha256 != expected:
            raise UsageError(f"checkpoint {built.checkpoint_path} changed since the export (SHA-256 differs)")
        return built.model

    def eager_runner(self, module=None):
        """A TorchRunner over ``module`` (e.g. the user's model in memory), else the rebuilt eager model."""
        from .backends.base import TensorSpec
        from .backends.torch_eager import TorchRunner

        if module is not None and module.training:
            raise UsageError("the eager model is in training mode; call model.eval() first")
        # Eager always takes float32, whatever the graph's I/O precision.
        specs = [TensorSpec(s.name, np.dtype(np.float32), s.shape) for s in self.input_specs()]
        return TorchRunner(module if module is not None else self.eager_model(), specs, self.output_names)
