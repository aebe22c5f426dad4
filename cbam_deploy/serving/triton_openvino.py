"""A model folder for Triton's own OpenVINO backend (``backend: "openvino"``): ``OUT/NAME/config.pbtxt``
and ``OUT/NAME/1/model.onnx``, the config built as Triton's ``ModelConfig`` protobuf like every other
config here (``serving.triton_config``).

Not loadable here: the ``tritonserver`` that nvidia-pytriton carries has no OpenVINO backend (only
python and the ones PyTriton needs); Triton's NGC containers (``nvcr.io/nvidia/tritonserver:*-py3``)
ship it. What is verified here is that the config parses back as a ``ModelConfig`` with the fields
the backend's documentation names. ``cbam-serve --backend openvino`` is the tested way to serve
OpenVINO with this package: Triton's Python backend running the ``openvino`` runner.

Precision: the backend's parameters (``PERFORMANCE_HINT``, ``NUM_STREAMS``, ``INFERENCE_NUM_THREADS``,
``HINT_BF16``...) have no way to ask for f32, so on a CPU with AVX-512 BF16 or AMX, OpenVINO's
default (bf16) may apply to an FP32 model served this way. Written with ``bf16=True`` it asks for
bf16 (``HINT_BF16: YES``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import UsageError
from .triton_config import DEFAULT_MAX_BATCH, build_config, write_config

BACKEND = "openvino"
MODEL_FILE = "model.onnx"


def build_openvino_config(name: str, signature, *, max_batch_size: int | None = DEFAULT_MAX_BATCH,
                          threads: int | None = None, bf16: bool = False, instance_count: int = 1,
                          max_queue_delay_us: int = 500, metadata=None):
    """A ``ModelConfig`` for Triton's OpenVINO backend over ``model.onnx`` (latency mode: one stream)."""
    if threads is not None and threads <= 0:
        raise UsageError(f"threads must be positive, got {threads}")
    config = build_config(name, signature, kind="onnx", max_batch_size=max_batch_size, instance_count=instance_count,
                          instance_kind="KIND_CPU", max_queue_delay_us=max_queue_delay_us, metadata=metadata)
    config.ClearField("platform")
    config.backend = BACKEND
    config.default_model_filename = MODEL_FILE
    parameters = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1"}
    if threads:
        parameters["INFERENCE_NUM_THREADS"] = str(threads)
    if bf16:
        parameters["HINT_BF16"] = "YES"
    for key, value in parameters.items():
        config.parameters[key].string_value = value
    return config


def write_openvino_model(model_dir: str | Path, out: str | Path, *, name: str | None = None,
                         threads: int | None = None, bf16: bool = False, force: bool = False) -> Path:
    """Write ``out/NAME`` (default NAME: the export's name + ``_openvino``) for Triton's OpenVINO
    backend from an exported model folder or .onnx file; returns the folder. All or nothing: an
    existing folder is refused unless ``force``."""
    from ..artifacts import check_name, staged_directory
    from ..model_dir import ExportedModel

    exported = ExportedModel.open(model_dir)
    name = check_name(name or f"{exported.name}_openvino")
    max_batch = DEFAULT_MAX_BATCH if any(0 in d for d in exported.input_dynamic_axes()) else 0
    config = build_openvino_config(name, exported.signature, max_batch_size=max_batch, threads=threads, bf16=bf16,
                                   metadata=exported.metadata)
    target = Path(out) / name
    with staged_directory(target, force=force) as staging:
        (staging / "1").mkdir()
        shutil.copyfile(exported.onnx_path, staging / "1" / MODEL_FILE)
        write_config(staging, config)
    return target
