"""Model sources: where the module an export starts from comes from. Each builds an eval-mode
``nn.Module`` plus what the export needs to know about it (example inputs, metadata, whether it
classifies); the export itself is the same for all of them.

- ``BuiltinSource``: a registered host (``--arch``) with a CBAM variant (``--variant``; ``None`` or
  ``"none"``: the plain host), weights ``reference``, ``random`` or a checkpoint path.
- ``FactorySource``: a user's ``MODULE:FACTORY`` or ``file.py:FACTORY`` (``--model``).
- ``ModuleSource``: a module already in memory (the Python API).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import torch
from torch import nn

from ...errors import UsageError
from ...layout import REFERENCE_ARCH, REFERENCE_WEIGHTS, is_reference_task
from ...options import DEFAULT_ARCH
from ...progress import StageReporter

#: (onnx bytes, eager module returning a flat tuple, output names) -> extra report entries.
TaskResults = Callable[[bytes, nn.Module, Sequence[str]], dict[str, Any]]


@dataclass
class SourceModel:
    """A built model and what the export needs to know about it."""

    model: nn.Module
    example_inputs: tuple[torch.Tensor, ...]
    name: str  # the default model name (a precision suffix is added by the export)
    metadata: dict[str, Any]
    classifier: bool = False
    preprocessing: dict[str, Any] = field(default_factory=dict)
    parity_data: np.ndarray | None = None  # real inputs for FP16/INT8 parity, when the source has them
    task_results: TaskResults | None = None  # e.g. held-out accuracy for the reference task

    @property
    def reference_task(self) -> bool:
        return is_reference_task(self.metadata)


class ModelSource(Protocol):
    def build(self, reporter: StageReporter) -> SourceModel: ...


def _seeded_inputs(shapes: Sequence[tuple[int, ...]], seed: int) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(*s, generator=generator) for s in shapes)


@dataclass
class BuiltinSource:
    """A registered host with a CBAM variant in every block (``variant`` None or 'none': the plain host)."""

    arch: str = DEFAULT_ARCH
    variant: str | None = None
    weights: str | None = None  # 'reference' | 'random' | a path; default: reference for resnet_mini
    num_classes: int | None = None
    ratio: int | None = None
    kernel_size: int | None = None
    input_shape: tuple[int, ...] | None = None
    seed: int = 0

    def build(self, reporter: StageReporter) -> SourceModel:
        from ...models import host_defaults
        from ...models.registry import HOSTS, VARIANTS
        from ...models.spec import ModelSpec, build_model

        arch = HOSTS.get(self.arch).name
        variant = None if self.variant in (None, "none") else VARIANTS.get(self.variant).name
        defaults = host_defaults(arch)
        shape = tuple(self.input_shape or defaults.input_shape)
        if len(shape) != 4:
            raise UsageError(f"--input-shape {'x'.join(map(str, shape))} must be NxCxHxW (4 dimensions)")
        if arch != "cbam" and shape[1] != 3:
            raise UsageError(f"--input-shape {'x'.join(map(str, shape))}: host {arch!r} takes 3 input channels, "
                             f"got {shape[1]}")
        weights = self.weights or (REFERENCE_WEIGHTS if arch == REFERENCE_ARCH else "random")
        spec = ModelSpec(arch=arch, variant=variant, num_classes=self.num_classes, ratio=self.ratio,
                         kernel_size=self.kernel_size, channels=shape[1] if arch == "cbam" else None,
                         weights=weights, seed=self.seed)
        with reporter.stage("build", f"{arch} + {variant or 'no attention'}, weights: {weights}"):
            built = build_model(spec)
        if weights == "random":
            reporter.note(f"random weights (seed {self.seed}): parity is proven, but the model predicts nothing useful")
        spec, classes = built.spec, built.config.get("classes")
        preprocessing = {"mean": list(built.config.get("mean") or defaults.mean or []) or None,
                         "std": list(built.config.get("std") or defaults.std or []) or None,
                         "input_size": list(shape[2:]), "layout": "NCHW", "scale": "1/255 then (x - mean) / std"}
        metadata = {
            "variant": variant or "none", "host": arch, "kernel_size": spec.kernel_size, "ratio": spec.ratio,
            "num_classes": spec.num_classes if defaults.is_classifier else None, "classes": classes,
            "model_spec": spec.to_dict(), "preprocessing": preprocessing,
            "checkpoint_sha256": built.checkpoint_sha256 or f"none ({weights} weights, seed {self.seed})",
        }
        source = SourceModel(built.model, _seeded_inputs([shape], self.seed), f"{variant or 'plain'}_{arch}", metadata,
                             classifier=defaults.is_classifier, preprocessing=preprocessing)
        if source.reference_task and classes:
            from ...reference.evaluate import heldout_batch

            # Real inputs for FP16/INT8 parity: held-out images, never the calibration images.
            source.parity_data = heldout_batch(64)[0]
            source.task_results = reference_task_results(classes)
        return source


@dataclass
class FactorySource:
    """A user's network: ``factory`` is ``MODULE:FACTORY`` or ``path/to/file.py:FACTORY``."""

    factory: str
    input_shapes: Sequence[tuple[int, ...]]
    kwargs: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None  # a checkpoint path; None keeps the weights the factory built
    classifier: bool = False
    seed: int = 0
    # Image preprocessing to record (cbam-export --mean/--std/--image-size/--channel-order)
    image_preprocessing: dict[str, Any] | None = None

    def build(self, reporter: StageReporter) -> SourceModel:
        from ...models.user_model import UserModelSpec, build_user_model, canonical_reference, state_sha256

        if not self.input_shapes:
            raise UsageError("--model needs --input-shape (one per input, e.g. --input-shape 1x3x224x224)")
        if self.weights in ("reference", "random"):
            raise UsageError(f"--weights {self.weights} is for the built-in hosts; with --model pass a checkpoint "
                             "path, or leave --weights out to keep the factory's own weights")
        weights = None
        if self.weights:
            if not Path(self.weights).is_file():
                raise UsageError(f"--weights {self.weights!r}: no such file")
            weights = str(Path(self.weights).resolve())
        spec = UserModelSpec(factory=canonical_reference(self.factory), kwargs=dict(self.kwargs), weights=weights,
                             seed=self.seed)
        with reporter.stage("build", f"{self.factory}, weights: {self.weights or 'as the factory built them'}"):
            built = build_user_model(spec)
        if built.load_report is not None:
            reporter.note(built.load_report.summary())
        shapes = [tuple(s) for s in self.input_shapes]
        preprocessing = {"input_size": list(shapes[0][2:]), "layout": "NCHW"} if len(shapes[0]) == 4 else {}
        if self.image_preprocessing:
            preprocessing = image_preprocessing_for(shapes[0], self.image_preprocessing)
        metadata = {"variant": "user", "host": self.factory, "user_model": spec.to_dict(),
                    "state_sha256": state_sha256(built.model),
                    "checkpoint_sha256": built.checkpoint_sha256 or "none (the factory's own weights)",
                    "preprocessing": preprocessing}
        return SourceModel(built.model, _seeded_inputs(shapes, self.seed), type(built.model).__name__.lower(),
                           metadata, classifier=self.classifier, preprocessing=preprocessing)


def image_preprocessing_for(shape: Sequence[int], given: dict[str, Any]) -> dict[str, Any]:
    """The recorded preprocessing of a user's image model, checked against its first input's shape."""
    from ...model_dir import MAX_INPUT_SIDE

    if len(shape) != 4 or shape[1] != 3:
        raise UsageError(f"--mean/--std describe RGB images, but the first input has shape "
                         f"{'x'.join(map(str, shape))} (expected N x 3 x H x W)")
    size = list(given.get("input_size") or shape[2:])
    if any(side > MAX_INPUT_SIDE for side in size):
        raise UsageError(f"--image-size {'x'.join(map(str, size))}: at most {MAX_INPUT_SIDE} pixels a side")
    return {"mean": list(given["mean"]), "std": list(given["std"]), "input_size": size, "layout": "NCHW",
            "channel_order": given.get("channel_order", "RGB"), "scale": "1/255 then (x - mean) / std"}


@dataclass
class ModuleSource:
    """A module in memory (the Python API): tensors, or shapes for seeded standard-normal inputs."""

    model: nn.Module
    example_inputs: Any
    classifier: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)

    def build(self, reporter: StageReporter) -> SourceModel:
        if not isinstance(self.model, nn.Module):
            raise UsageError(f"model must be a torch.nn.Module, got {type(self.model).__name__}")
        metadata = {"host": type(self.model).__name__, "variant": "user", **self.metadata}
        return SourceModel(self.model, as_inputs(self.example_inputs), type(self.model).__name__.lower(), metadata,
                           classifier=self.classifier, preprocessing=dict(metadata.get("preprocessing") or {}))


def as_inputs(example_inputs: Any) -> tuple[torch.Tensor, ...]:
    """A tensor, tensors, or shapes (seeded standard-normal tensors are made for shapes)."""
    items = [example_inputs] if isinstance(example_inputs, torch.Tensor) else list(example_inputs)
    if items and all(isinstance(d, int) for d in items):  # one shape given flat: (1, 3, 224, 224)
        items = [tuple(items)]
    out = []
    generator = torch.Generator().manual_seed(0)
    for item in items:
        if isinstance(item, torch.Tensor):
            out.append(item)
        elif isinstance(item, (tuple, list)) and item and all(isinstance(d, int) and d > 0 for d in item):
            out.append(torch.randn(*item, generator=generator))
        else:
            raise UsageError(f"example input {item!r} is neither a tensor nor a shape of positive integers")
    if not out:
        raise UsageError("no example inputs given")
    if any(x.numel() == 0 for x in out):  # a batch of 0 would fail deep inside ONNX Runtime, in a rewrite
        raise UsageError(f"example inputs must not be empty; got shapes {[list(x.shape) for x in out]}")
    if any(not x.is_floating_point() for x in out):
        raise UsageError("example inputs must be floating point tensors (integer inputs are not supported)")
    return tuple(x.detach().float().cpu() for x in out)


def reference_task_results(classes: Sequence[str]) -> TaskResults:
    """Accuracy of the exported model on held-out images against eager, and one real prediction."""

    def results(onnx_bytes: bytes, eager: nn.Module, output_names: Sequence[str]) -> dict[str, Any]:
        from ...backends import open_runner
        from ...backends.base import cast_feed
        from ...reference.evaluate import evaluate_heldout, heldout_batch

        with open_runner("onnxruntime-cpu", onnx_bytes) as runner:
            name = runner.input_specs()[0].name
            fixed = runner.input_specs()[0].shape[0]
            step = fixed if isinstance(fixed, int) else None  # --dynamic none/hw: one fixed batch size

            def onnx(x: np.ndarray) -> np.ndarray:
                return runner.infer(cast_feed(runner, {name: x}))[output_names[0]].astype(np.float32)

            def torch_eager(x: np.ndarray) -> np.ndarray:
                with torch.no_grad():
                    return eager(torch.from_numpy(x))[0].numpy()

            predict = _chunked(onnx, step)
            accuracy = evaluate_heldout(predict, reference=_chunked(torch_eager, step))
            x, labels = heldout_batch(4)
            logits = predict(x[3:4])[0]
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        return {"heldout_accuracy": accuracy.to_dict(),
                "example_prediction": {"image": "heldout #3", "label": classes[int(labels[3])],
                                       "predicted": classes[int(probs.argmax())], "probability": float(probs.max())}}

    return results


def _chunked(run: Callable[[np.ndarray], np.ndarray], step: int | None) -> Callable[[np.ndarray], np.ndarray]:
    """``run`` over chunks padded to a fixed batch size and trimmed again (graphs with a fixed batch)."""
    if step is None:
        return run

    def call(x: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(x), step):
            chunk = x[i:i + step]
            padded = np.concatenate([chunk, np.zeros((step - len(chunk), *x.shape[1:]), x.dtype)])
            out.append(run(padded)[:len(chunk)])
        return np.concatenate(out)

    return call
