"""config.pbtxt: written by cbam-export for every variant, parsed by Triton's own ModelConfig
protobuf (from tritonclient), and in agreement with the ONNX model's inputs and outputs."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

from cbam_deploy.errors import UsageError
from cbam_deploy.serving.triton_config import build_config, parse_config

from ..conftest import VARIANTS

ONNX_TO_TRITON = {onnx.TensorProto.FLOAT: pb.TYPE_FP32, onnx.TensorProto.FLOAT16: pb.TYPE_FP16}


def load_config(model_dir: Path) -> pb.ModelConfig:
    config = pb.ModelConfig()
    text_format.Parse((model_dir / "config.pbtxt").read_text(), config)  # Triton's own parser
    return config


def onnx_io(path: Path):
    model = onnx.load(str(path))
    inits = {t.name for t in model.graph.initializer}

    def describe(values):
        return [(v.name, v.type.tensor_type.elem_type,
                 [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]) for v in values]

    return describe(i for i in model.graph.input if i.name not in inits), describe(model.graph.output)


@pytest.mark.parametrize("variant", VARIANTS)
def test_config_for_every_variant_matches_the_onnx(exported_host, variant):
    exported = exported_host("cbam", variant)
    model_dir = exported.onnx_path.parent.parent
    config = load_config(model_dir)
    inputs, outputs = onnx_io(exported.onnx_path)
    assert config.name == model_dir.name and config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 8  # the batch axis is dynamic: Triton owns it
    for declared, (name, elem, dims) in zip([*config.input, *config.output], [*inputs, *outputs]):
        assert declared.name == name and declared.data_type == ONNX_TO_TRITON[elem]
        assert dims[0] == -1 and list(declared.dims) == dims[1:]
    assert len(config.input) == len(inputs) and len(config.output) == len(outputs)
    assert list(config.dynamic_batching.preferred_batch_size) == [2, 4, 8]
    assert config.instance_group[0].kind == pb.ModelInstanceGroup.KIND_AUTO
    assert config.parameters["cbam_deploy.variant"].string_value == variant


def test_reference_model_config_carries_preprocessing(tmp_path):
    from cbam_deploy.cli.export import main as export_main

    assert export_main(["--out", str(tmp_path), "--dynamic", "none", "--no-optimize"]) == 0
    config = load_config(tmp_path / "original_resnet_mini")
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")  # static batch: no batching
    assert list(config.input[0].dims) == [1, 3, 64, 64]
    assert config.parameters["cbam_deploy.preprocessing.mean"].string_value == "0.5,0.5,0.5"
    assert config.parameters["cbam_deploy.classes"].string_value.split(",")[0] == "circle"


def test_plan_config_and_malformed_text():
    signature = {"inputs": [{"name": "input", "dtype": "float32", "shape": ["batch", 3, "height", "width"]}],
                 "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", 5]}]}
    config = build_config("m_trt", signature, kind="plan", max_batch_size=16)
    assert config.platform == "tensorrt_plan" and config.default_model_filename == "model.plan"
    assert list(config.input[0].dims) == [3, -1, -1] and list(config.dynamic_batching.preferred_batch_size) == [2, 4, 8, 16]
    assert config.instance_group[0].kind == pb.ModelInstanceGroup.KIND_GPU
    with pytest.raises(UsageError, match="not a valid Triton model config"):
        parse_config("name: 'x'\nmax_batch_size: lots\n")
