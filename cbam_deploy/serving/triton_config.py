"""``models/<name>/config.pbtxt`` for Triton Inference Server, built as Triton's own ``ModelConfig``
protobuf (shipped with tritonclient) and written in its text format, so what we write is what
Triton parses, never a hand-formatted string."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from ..artifacts import atomic_write_text
from ..errors import MissingDependencyError, UsageError

CONFIG_FILE = "config.pbtxt"
PLATFORMS = {"onnx": "onnxruntime_onnx", "plan": "tensorrt_plan"}
DEFAULT_MAX_BATCH = 8
_DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int8": "TYPE_INT8", "int32": "TYPE_INT32",
           "int64": "TYPE_INT64", "uint8": "TYPE_UINT8", "bool": "TYPE_BOOL", "float64": "TYPE_FP64"}


def _pb():
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError:
        raise MissingDependencyError("the Triton config needs tritonclient's ModelConfig protobuf: "
                                     "pip install 'tritonclient[grpc]'") from None
    return model_config_pb2, text_format


def preferred_batch_sizes(max_batch_size: int) -> list[int]:
    """Powers of two up to the maximum, from 2 on (batch 1 needs no preference)."""
    sizes, n = [], 2
    while n <= max_batch_size:
        sizes.append(n)
        n *= 2
    return sizes or [max_batch_size]


def _flatten_parameters(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten_parameters(f"{prefix}.{k}", v, out)
    elif value is not None:
        out[prefix] = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def build_config(name: str, signature: Mapping[str, Sequence[Mapping[str, Any]]], *, kind: str = "onnx",
                 max_batch_size: int | None = DEFAULT_MAX_BATCH, instance_count: int = 1,
                 instance_kind: str | None = None, max_queue_delay_us: int = 500,
                 metadata: Mapping[str, Any] | None = None):
    """A ``ModelConfig`` for a model whose I/O is ``signature`` (``io_signature()``: name, dtype, dims
    with str for dynamic). ``max_batch_size``: used when every input's axis 0 is dynamic; Triton
    then owns that axis (dims exclude it) and dynamic batching is on. Static batch: 0, no batching."""
    pb, _ = _pb()
    if kind not in PLATFORMS:
        raise UsageError(f"unknown model kind {kind!r}; valid: {', '.join(PLATFORMS)}")
    inputs, outputs = list(signature["inputs"]), list(signature["outputs"])
    batched = bool(max_batch_size) and all(i["shape"] and not isinstance(i["shape"][0], int) for i in inputs)
    config = pb.ModelConfig(name=name, platform=PLATFORMS[kind], max_batch_size=int(max_batch_size) if batched else 0,
                            default_model_filename="model.onnx" if kind == "onnx" else "model.plan")

    def dims(shape: Sequence[Any]) -> list[int]:
        body = shape[1:] if batched else shape
        return [d if isinstance(d, int) and d > 0 else -1 for d in body]

    def dtype(value: Mapping[str, Any]) -> int:
        name_ = str(value["dtype"])
        if name_ not in _DTYPES:
            raise UsageError(f"{value['name']!r} has type {name_}, which the Triton config does not map")
        return pb.DataType.Value(_DTYPES[name_])

    for value in inputs:
        config.input.add(name=str(value["name"]), data_type=dtype(value), dims=dims(value["shape"]))
    for value in outputs:
        config.output.add(name=str(value["name"]), data_type=dtype(value), dims=dims(value["shape"]))
    if batched:
        config.dynamic_batching.preferred_batch_size.extend(preferred_batch_sizes(config.max_batch_size))
        config.dynamic_batching.max_queue_delay_microseconds = max_queue_delay_us
    group_kind = instance_kind or ("KIND_GPU" if kind == "plan" else "KIND_AUTO")
    config.instance_group.add(count=instance_count, kind=pb.ModelInstanceGroup.Kind.Value(group_kind))
    params: dict[str, str] = {}
    meta = dict(metadata or {})
    for key in ("variant", "host", "precision", "classes"):
        if meta.get(key) is not None:
            _flatten_parameters(f"cbam_deploy.{key}", meta[key], params)
    _flatten_parameters("cbam_deploy.preprocessing", meta.get("preprocessing") or {}, params)
    for key, value in params.items():
        config.parameters[key].string_value = value
    return config


def to_text(config) -> str:
    _, text_format = _pb()
    return text_format.MessageToString(config)


def parse_config(text: str):
    """Parse config.pbtxt text into ``ModelConfig`` (raises UsageError on a malformed file)."""
    pb, text_format = _pb()
    config = pb.ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise UsageError(f"not a valid Triton model config: {exc}") from None
    return config


def write_config(model_dir: str | Path, config) -> Path:
    """Write ``model_dir/config.pbtxt`` atomically."""
    path = Path(model_dir) / CONFIG_FILE
    atomic_write_text(path, to_text(config))
    return path
