"""``evaluate``: held-out accuracy of an export (ONNX Runtime, against its eager model) or a checkpoint (eager)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..layout import REFERENCE_ARCH
from ..model_dir import ExportedModel


def evaluate(model: str | Path, *, variant: str | None = None, count: int = 1000, provider: str = "cpu",
             verify: bool = True) -> tuple[str, object]:
    """(backend label, ``AccuracyReport``) on the reference task's held-out split.

    ``model``: an exported reference-task folder or .onnx (run in ONNX Runtime, compared with eager),
    or a checkpoint .pt (run eager; ``variant`` when the checkpoint does not record it).
    """
    from ..reference.evaluate import evaluate_heldout

    if count <= 0:
        raise UsageError(f"count must be positive, got {count}")
    path = Path(model)
    if path.is_dir() or path.suffix == ".onnx":
        from ..backends import open_runner

        exported = ExportedModel.open(path, verify=verify)
        if (exported.metadata.get("model_spec") or {}).get("arch") != REFERENCE_ARCH:
            raise UsageError(f"{str(exported.onnx_path)!r} is not a reference-task model (host {REFERENCE_ARCH}); "
                             "nothing to evaluate")
        with open_runner(f"onnxruntime-{provider}", exported) as candidate, open_runner("torch", exported) as reference:
            report = evaluate_heldout(lambda x: candidate.infer({"input": x})["logits"],
                                      reference=lambda x: reference.infer({"input": x})["logits"], count=count)
        return f"onnxruntime[{provider}]", report
    with _checkpoint_runner(path, variant) as candidate:
        return "torch-eager", evaluate_heldout(lambda x: candidate.infer({"input": x})["logits"], count=count)


def _checkpoint_runner(path: Path, variant: str | None):
    from ..backends import open_runner
    from ..backends.base import TensorSpec
    from ..checkpoint import read_checkpoint
    from ..models.registry import VARIANTS
    from ..models.spec import ModelSpec, build_model

    _, extra = read_checkpoint(path)
    config = extra.get("cbam_deploy") or {}
    variant = variant or config.get("variant")
    if variant is None:
        raise UsageError(f"{str(path)!r} does not say its variant; pass --variant")
    if variant != "none":
        VARIANTS.get(variant)
    built = build_model(ModelSpec(arch=config.get("arch", REFERENCE_ARCH),
                                  variant=None if variant == "none" else variant, weights=str(path)))
    return open_runner("torch", built.model, inputs=[TensorSpec("input", np.dtype(np.float32), (None, 3, None, None))],
                       output_names=["logits"])
