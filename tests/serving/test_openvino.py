"""OpenVINO behind Triton: ``cbam-serve --backend openvino`` answers real requests (a real tritonserver,
HTTP and gRPC) like eager, and the model folder for Triton's own OpenVINO backend parses as Triton's
``ModelConfig`` (it cannot be loaded here: PyTriton's tritonserver has no OpenVINO backend)."""

from __future__ import annotations

import signal

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

pytest.importorskip("openvino", reason="the openvino extra is not installed")

from .conftest import start_server, stop_and_check_nothing_left  # noqa: E402


def test_triton_openvino_model_folder_parses_with_the_backend_fields(reference_model, tmp_path, capsys):
    from cbam_deploy.cli.serve import main as serve_main

    assert serve_main([str(reference_model), "--write-triton-openvino", str(tmp_path), "--threads", "2"]) == 0
    folder = tmp_path / f"{reference_model.name}_openvino"
    config = pb.ModelConfig()
    text_format.Parse((folder / "config.pbtxt").read_text(), config)  # Triton's own parser
    assert config.backend == "openvino" and not config.platform
    assert config.default_model_filename == "model.onnx" and (folder / "1" / "model.onnx").is_file()
    assert (folder / "1" / "model.onnx").read_bytes() == (reference_model / "1" / "model.onnx").read_bytes()
    params = {k: v.string_value for k, v in config.parameters.items()}
    assert params["INFERENCE_NUM_THREADS"] == "2" and params["NUM_STREAMS"] == "1" and "HINT_BF16" not in params
    assert config.max_batch_size == 8 and [i.name for i in config.input] == ["input"]
    assert config.instance_group[0].kind == pb.ModelInstanceGroup.KIND_CPU
    # Nothing overwritten unless asked.
    assert serve_main([str(reference_model), "--write-triton-openvino", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_bf16_config_asks_the_backend_for_bf16(reference_model):
    from cbam_deploy.model_dir import ExportedModel
    from cbam_deploy.serving.triton_openvino import build_openvino_config

    model = ExportedModel.open(reference_model)
    config = build_openvino_config("m", model.signature, bf16=True)
    assert config.parameters["HINT_BF16"].string_value == "YES"


def test_serve_backend_openvino_answers_like_eager(reference_model, pool, tmp_path, monkeypatch):
    pytest.importorskip("pytriton", reason="cbam-serve needs nvidia-pytriton")
    from cbam_deploy.serving.load_test import infer_once

    monkeypatch.setenv("CBAM_DEPLOY_OPENVINO_CACHE", str(tmp_path / "ov-cache"))
    inputs, expected = pool
    server = start_server(reference_model, tmp_path / "serve", "--backend", "openvino")
    try:
        for protocol, rows in (("http", slice(0, 3)), ("grpc", slice(3, 4))):
            feed = {"input": np.ascontiguousarray(inputs["input"][rows])}
            out = infer_once(protocol, server.url(protocol), server.name, feed, ["logits"])["logits"]
            ref = expected["logits"][rows]
            assert np.abs(out - ref).max() / np.abs(ref).max() <= 1e-4  # f32: bf16 would be ~1e-3 off
        assert any((tmp_path / "ov-cache").iterdir())  # the stub compiled through OpenVINO's model cache
    finally:
        code = stop_and_check_nothing_left(server, signal.SIGINT)
    assert code == 0
