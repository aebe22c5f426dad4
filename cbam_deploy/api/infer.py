"""``classify``: run an exported model on images or a .npy batch, preprocessing from its metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import CheckFailedError, UsageError
from ..model_dir import ExportedModel
from ..preprocess import IMAGE_SUFFIXES, load_image, load_npy, load_rgb


@dataclass
class Classification:
    """Top-k classes per input, and the pictures (RGB at the model's size) when inputs were images."""

    backend: str
    results: list[dict[str, Any]]
    batch: np.ndarray
    pictures: list[np.ndarray] | None = field(default=None, repr=False)


def load_inputs(model: ExportedModel, paths: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """The preprocessed batch, and the RGB pictures (None for a .npy batch)."""
    if not paths:
        raise UsageError("no inputs given")
    for p in paths:
        if not p.endswith(".npy") and Path(p).suffix.lower() not in IMAGE_SUFFIXES:
            raise UsageError(f"{p!r} is not an image ({', '.join(IMAGE_SUFFIXES)}) or a .npy batch")
    if len(paths) == 1 and paths[0].endswith(".npy"):
        batch = load_npy(paths[0])
        if batch.ndim != len(model.traced_shape) or len(batch) == 0:
            raise UsageError(f"{paths[0]!r} holds an array of shape {list(batch.shape)}; expected a non-empty "
                             f"batch shaped like {list(model.traced_shape)}")
        return batch, None  # dtype and shape are checked by the runner, against the model's own inputs
    if any(p.endswith(".npy") for p in paths):
        raise UsageError("give either image files or a single .npy batch, not both")
    pre = model.preprocessing
    if not pre.get("mean") or not pre.get("std"):
        raise UsageError(f"model {model.name!r} has no image preprocessing in its metadata: export it with "
                         "--mean R,G,B --std R,G,B (cbam-export) to record it, or give a preprocessed .npy batch")
    size = pre.get("input_size") or model.traced_shape[2:]
    batch = np.stack([load_image(p, size, pre["mean"], pre["std"], pre.get("channel_order", "RGB")) for p in paths])
    return batch, [load_rgb(p, size) for p in paths]


def classify(model: str | Path | ExportedModel, inputs: Sequence[str], *, backend: str = "onnxruntime",
             provider: str = "cpu", top_k: int = 3, allow_nonfinite: bool = False, trust_model_code: bool = False,
             verify: bool = True) -> Classification:
    """Top-``top_k`` classes for every input. ``backend``: "onnxruntime" (the ONNX), "openvino" (the ONNX in OpenVINO, f32) or "eager" (the
    PyTorch model it was exported from). Non-finite outputs are an error: a model answering NaN is broken."""
    if top_k <= 0:
        raise UsageError(f"top_k must be positive, got {top_k}")
    exported = (model if isinstance(model, ExportedModel) else
                ExportedModel.open(model, trust_model_code=trust_model_code, verify=verify))
    if len(exported.input_names) != 1:
        raise UsageError(f"model {exported.name!r} takes {len(exported.input_names)} inputs "
                         f"({', '.join(exported.input_names)}); classification feeds one image input: use "
                         "cbam_deploy.api or tritonclient")
    batch, pictures = load_inputs(exported, inputs)
    from ..backends import open_runner

    if backend not in ("onnxruntime", "openvino", "eager"):
        raise UsageError(f"unknown backend {backend!r}; valid: onnxruntime, openvino, eager")
    if backend == "openvino":
        from ..backends import backend_problem
        from ..errors import MissingDependencyError

        problem = backend_problem("openvino")
        if problem:
            raise MissingDependencyError(problem)
    runner = (open_runner("torch", exported) if backend == "eager" else
              # One batch: a static compile for it would cost more than it saves.
              open_runner("openvino", exported, allow_nonfinite=allow_nonfinite, static_shapes=0) if backend == "openvino" else
              open_runner(f"onnxruntime-{provider}", exported, allow_nonfinite=allow_nonfinite))
    runner.allow_nonfinite = allow_nonfinite
    with runner:
        logits = runner.infer({exported.input_name: batch})[exported.output_names[0]].astype(np.float32)
    if logits.ndim != 2:
        raise UsageError(f"model {exported.name!r} is not a classifier (output shape {list(logits.shape)}); nothing to rank")
    if not np.isfinite(logits).all():
        bad = int((~np.isfinite(logits)).sum())
        raise CheckFailedError(f"model {exported.name!r} answered {bad} NaN/Inf logits"
                               + (" (the input has NaN/Inf too)" if not np.isfinite(batch).all() else
                                  "; its weights are broken (corrupted file?)"))
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    classes = exported.classes or [str(i) for i in range(logits.shape[1])]
    names = list(inputs) if pictures is not None else [f"{inputs[0]}[{i}]" for i in range(len(batch))]
    results = [{"input": name, "top_k": [{"class": classes[i], "index": int(i), "probability": float(p[i])}
                                          for i in np.argsort(-p)[:top_k]]} for name, p in zip(names, probs)]
    return Classification(runner.name, results, batch, pictures)


def attention_picture(model: ExportedModel, result: Classification, block: str | None) -> tuple[bytes, str]:
    """PNG of each input beside its spatial attention map (from the eager model), and the block shown."""
    if result.pictures is None:
        raise UsageError("attention maps need image files (a .npy batch has no pictures to draw on)")
    import torch

    from ..attention_maps import pick_block, render, spatial_gates

    maps = spatial_gates(model.eager_model(), torch.from_numpy(result.batch))
    chosen = pick_block(maps, block)
    titles = [f"{Path(r['input']).name}: {r['top_k'][0]['class']} ({r['top_k'][0]['probability']:.2f}) - "
              f"spatial attention {chosen}" for r in result.results]
    return render(result.pictures, maps[chosen], titles=titles), chosen
