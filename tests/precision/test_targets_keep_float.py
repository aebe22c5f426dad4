"""--target picks INT8's Q/DQ flavor; --keep-float keeps PyTorch modules in float, by name or by
measurement (FP16 range analysis finds an overflow ONNX Runtime CPU hides); output overflow is
reported as such; cbam-build refuses another target's flavor."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from cbam_deploy.cli.export import main as export_main
from cbam_deploy.errors import UsageError
from cbam_deploy.precision import quantize_int8

from ..conftest import REPO

NETS = REPO / "tests" / "fixtures" / "fp16_overflow_models.py"


def _export(tmp_path: Path, *argv: str) -> int:
    return export_main([*argv, "--out", str(tmp_path)])


def _zero_points(model: onnx.ModelProto) -> list[np.ndarray]:
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    return [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]


@pytest.mark.parametrize("target, dtype", [("onnxruntime-cpu", np.uint8), ("tensorrt", np.int8)])
def test_int8_export_is_in_its_targets_flavor_and_recorded(tmp_path, capsys, target, dtype):
    assert _export(tmp_path, "--precision", "int8", "--calibration", "reference", "--target", target, "--name", "m") == 0
    report = json.loads((tmp_path / "m" / "export.json").read_text())
    meta = report["metadata"]
    assert meta["target"] == target and meta["int8_flavor"] == {"onnxruntime-cpu": "u8s8", "tensorrt": "s8s8"}[target]
    assert meta["calibration_method"] == {"onnxruntime-cpu": "percentile", "tensorrt": "minmax"}[target]  # per flavor
    zero_points = _zero_points(onnx.load(str(tmp_path / "m" / "1" / "model.onnx")))
    assert zero_points and all(z.dtype == dtype for z in zero_points)
    if target == "tensorrt":  # TensorRT's explicit quantization: every zero point is 0
        assert all(np.all(z == 0) for z in zero_points)
    else:  # uint8 activations are asymmetric: some zero point is not 0
        assert any(np.any(z != 0) for z in zero_points)
    accuracy = report["heldout_accuracy"]
    assert accuracy["accuracy_drop_points"] <= 1.0 and accuracy["top1_agreement"] >= 0.97
    if target == "onnxruntime-cpu":  # cbam-build refuses it in one line, before looking for TensorRT
        from cbam_deploy.cli.build import main as build_main

        capsys.readouterr()
        assert build_main([str(tmp_path / "m"), "--out", str(tmp_path / "plans")]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("cbam-build: error:") and "--target tensorrt" in err


def test_build_refuses_another_targets_int8_flavor():
    from cbam_deploy.api.build import check_build_flavor

    with pytest.raises(UsageError, match="--target tensorrt"):
        check_build_flavor({"precision": "int8", "int8_flavor": "u8s8", "target": "onnxruntime-cpu"})
    check_build_flavor({"precision": "int8", "int8_flavor": "s8s8", "target": "tensorrt"})
    check_build_flavor({"precision": "int8"})  # exported before --target: symmetric


def test_calibration_methods_give_their_own_scales(exported_resnet_mini):
    """Entropy is not min-max in disguise (quantize_static's own 128/128 bins made it exactly that)."""
    fp32, calibration = exported_resnet_mini
    scales = {}
    for method in ("minmax", "entropy"):
        model, report = quantize_int8(fp32, calibration, calibration_label="t", flavor="u8s8", method=method)
        assert report.to_dict()["calibration_method"] == method and report.qdq_pairs > 0
        scales[method] = {t.name: float(onnx.numpy_helper.to_array(t)) for t in model.graph.initializer
                          if t.name.endswith("_scale") and t.dims == []}
    shared = set(scales["minmax"]) & set(scales["entropy"])
    assert shared and any(scales["minmax"][k] != scales["entropy"][k] for k in shared)


@pytest.fixture(scope="module")
def exported_resnet_mini(tmp_path_factory):
    from cbam_deploy.precision.calibration import REFERENCE, load_calibration
    from cbam_deploy.models.hosts import REFERENCE_MEAN, REFERENCE_STD

    out = tmp_path_factory.mktemp("fp32")
    assert export_main(["--out", str(out), "--name", "m"]) == 0
    data, _, _ = load_calibration(REFERENCE, input_shape=(1, 3, 64, 64), mean=REFERENCE_MEAN, std=REFERENCE_STD,
                                  reference_task=True, limit=32)
    return onnx.load(str(out / "m" / "1" / "model.onnx")), data


def test_keep_float_auto_keeps_the_module_that_overflows_fp16(tmp_path, capsys):
    """neck.l2norm's sum of squares reaches ~4e5 > 65504: ONNX Runtime CPU hides it, range analysis does not."""
    model = ["--model", f"{NETS}:build_ssd_like", "--input-shape", "1x3x32x32", "--precision", "fp16"]
    assert _export(tmp_path, *model, "--name", "plain") == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]  # progress lines above it
    assert err.startswith("cbam-export: error: fp16") and "neck.l2norm" in err and "65504" in err
    assert "--keep-float auto" in err
    assert not (tmp_path / "plain").exists()
    assert _export(tmp_path, *model, "--keep-float", "auto", "--name", "auto") == 0
    report = json.loads((tmp_path / "auto" / "export.json").read_text())
    kept = report["metadata"]["precision_details"]["kept_float_modules"]
    assert list(kept) == ["neck.l2norm"] and kept["neck.l2norm"]["why"] == "range" and report["passed"]
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(tmp_path / "auto" / "1" / "model.onnx"))).graph
    types = {v.name: v.type.tensor_type.elem_type for v in graph.value_info}
    reduce_sum = next(n for n in graph.node if n.op_type == "ReduceSum")
    assert types[reduce_sum.output[0]] == onnx.TensorProto.FLOAT
    assert any(types.get(n.output[0]) == onnx.TensorProto.FLOAT16 for n in graph.node if n.op_type == "Conv")


def test_keep_float_by_module_name_and_unknown_names(tmp_path, capsys):
    model = ["--model", f"{NETS}:build_ssd_like", "--input-shape", "1x3x32x32", "--precision", "fp16"]
    assert _export(tmp_path, *model, "--keep-float", "neck.l2norm", "--name", "user") == 0
    kept = json.loads((tmp_path / "user" / "export.json").read_text())["metadata"]["precision_details"]["kept_float_modules"]
    assert kept == {"neck.l2norm": {"why": "user", "detail": "--keep-float"}}
    capsys.readouterr()
    assert _export(tmp_path, *model, "--keep-float", "neck.l2nrm", "--name", "bad") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("cbam-export: error: --keep-float") and "neck.l2nrm" in err and "closest: neck.l2norm" in err


def test_fp16_output_overflow_names_the_output_not_an_fp32_module(tmp_path, capsys):
    assert _export(tmp_path, "--model", f"{NETS}:build_huge_logits", "--input-shape", "1x3x16x16", "--precision",
                   "fp16", "--name", "huge") == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("cbam-export: error: fp16") and "output 'output' overflows FP16" in err and "starts at module fc" in err and "--keep-float auto" in err


def test_int8_keep_float_auto_meets_the_task_gate(tmp_path):
    assert _export(tmp_path, "--precision", "int8", "--calibration", "reference", "--keep-float", "auto",
                   "--name", "auto") == 0
    details = json.loads((tmp_path / "auto" / "export.json").read_text())["metadata"]["precision_details"]
    gate = details["keep_float_auto"]["gate"]
    assert gate["accuracy_drop_points"] <= 1.0 and gate["top1_agreement"] >= 0.97
    assert all(entry["why"] == "error" for entry in details["kept_float_modules"].values())


def test_int8_keep_float_auto_adds_the_worst_module_while_the_gate_fails(tmp_path, monkeypatch):
    """The search itself: a gate that fails once makes it keep one module, chosen by localized error."""
    from cbam_deploy.api.export import keep_float as ekf

    real_gate = ekf._gate
    calls = []

    def failing_once(*args):
        gate = real_gate(*args)

        def judged(model: bytes):
            result = gate(model)
            calls.append(result)
            return result if len(calls) > 1 else ekf.GateResult(False, "forced failure", result.values)

        return judged

    monkeypatch.setattr(ekf, "_gate", failing_once)
    assert _export(tmp_path, "--precision", "int8", "--calibration", "reference", "--keep-float", "auto",
                   "--name", "auto") == 0
    details = json.loads((tmp_path / "auto" / "export.json").read_text())["metadata"]["precision_details"]
    kept = details["kept_float_modules"]
    assert len(kept) == 1 and next(iter(kept.values()))["why"] == "error" and len(calls) == 2
    module = next(iter(kept))
    assert details["excluded_nodes"].get(f"error: kept float ({module})", 0) > 0
    assert details["keep_float_auto"]["speed_cost"]["slowdown"] > 0


def test_validate_explains_an_fp16_cell_that_overflows(tmp_path):
    """cbam-validate's derived FP16 answers Inf: the cell says which output overflowed and what to try."""
    import cbam_deploy
    from cbam_deploy.api.validate import validate

    from ..fixtures.fp16_overflow_models import build_huge_logits

    model = build_huge_logits()
    cbam_deploy.export(model, ((1, 3, 16, 16),), out=tmp_path, name="huge")
    report = validate(tmp_path / "huge", eager=model, precisions=["fp16"], batch_sizes=[1])
    cell = report.cells[0]
    assert cell.status == "fail" and any("output 'output' overflows FP16" in f and "--keep-float auto" in f
                                         for f in cell.failures)
    assert report.localization is None  # explained: nothing blamed on a module kept FP32


def test_a_value_between_fp32_kept_nodes_never_passes_through_fp16():
    """A kept node whose output also feeds an FP16 node: the converter casts it to FP16 and back for the
    next kept node; a residual stream kept FP32 (1e5) would then be inf there."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from cbam_deploy.precision import convert_to_fp16

    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "big"], ["a"], name="scale"), helper.make_node("Relu", ["a"], ["b"], name="relu"),
         helper.make_node("Div", ["b", "big"], ["c"], name="unscale"), helper.make_node("Relu", ["c"], ["y"], name="out"),
         helper.make_node("Sign", ["b"], ["side"], name="fp16_reader")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("side", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor("big", TensorProto.FLOAT, [], [1e5])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    converted, _ = convert_to_fp16(model, keep_fp32_nodes=["scale", "relu", "unscale"])
    x = np.array([[1.0, 2.0, -1.0, 0.5]], np.float32)
    session = ort.InferenceSession(converted.SerializeToString(), providers=["CPUExecutionProvider"])
    y = session.run(["y"], {"x": x})[0]
    assert y.dtype == np.float32 and np.allclose(y, np.maximum(x, 0), rtol=1e-3)
