"""`cbam-export --model FILE.py:FACTORY`: networks the toolkit has never seen, with CBAM written in other
people's styles, through every stage (export, FP16, validation), and errors that name the user's code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from cbam_deploy.cli.export import main as export_main
from cbam_deploy.cli.validate import main as validate_main
from cbam_deploy.models.user_model import UserModelSpec, build_user_model
from cbam_deploy.precision import convert_to_fp16

from ..conftest import EXAMPLES, REPO, randomize_batchnorm

BROKEN = REPO / "tests" / "fixtures" / "broken_models.py"

# (file, input shapes, an untraced shape per input for the independent check, expected outputs)
CASES = {
    "authors_style": (["1x3x64x64", "1x1x64x64"], [(2, 3, 80, 72), (2, 1, 80, 72)], ["logits", "mask"]),
    "timm_style": (["1x3x96x96"], [(3, 3, 128, 112)], ["logits", "embedding"]),
}


def user_checkpoint(tmp_path: Path, example: str) -> tuple[torch.nn.Module, Path]:
    """The user's trained model, stood in for by seeded weights and non-trivial BatchNorm statistics."""
    model = build_user_model(UserModelSpec(f"{EXAMPLES / example}.py:build_net", seed=5)).model
    randomize_batchnorm(model, seed=11, gamma=(0.2, 0.6))
    path = tmp_path / f"{example}.pt"
    torch.save({"state_dict": model.state_dict()}, path)
    return model.eval(), path


@pytest.mark.parametrize("example", sorted(CASES))
def test_foreign_cbam_network_exports_with_parity(tmp_path, capsys, example):
    shapes, untraced, outputs = CASES[example]
    model, checkpoint = user_checkpoint(tmp_path, example)
    out = tmp_path / "models"
    args = ["--model", f"{EXAMPLES / example}.py:build_net", "--weights", str(checkpoint), "--dynamic", "all",
            "--output-names", ",".join(outputs), "--name", example, "--out", str(out), "--classifier"]
    for s in shapes:
        args += ["--input-shape", s]
    assert export_main(args) == 0, capsys.readouterr().err
    report = json.loads((out / example / "export.json").read_text())
    onnx_path = out / example / "1" / "model.onnx"
    proto = onnx.load(str(onnx_path))
    ops = [n.op_type for n in proto.graph.node]
    assert "BatchNormalization" not in ops and report["fold"]["unfolded"] == {}
    assert report["fold"]["folded"] == sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert report["passed"] and any("not traced" in c["label"] for c in report["parity"]["cases"])
    assert [o.name for o in proto.graph.output] == outputs

    # Independently of the pipeline: ONNX Runtime on the file vs the user's eager model, at a batch
    # size and resolution that were not traced.
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(s).astype(np.float32) for s in untraced]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {i.name: x for i, x in zip(session.get_inputs(), xs)})
    with torch.no_grad():
        want = model(*[torch.from_numpy(x) for x in xs])
    for g, w in zip(got, want):
        w = w.numpy()
        assert g.shape == w.shape
        assert np.abs(g - w).max() / np.abs(w).max() < 1e-4

    # FP16 keeps every Sigmoid gate in FP32, wherever the user's code put it.
    fp16, _ = convert_to_fp16(proto)
    inferred = onnx.shape_inference.infer_shapes(fp16)
    types = {v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
    sigmoids = [n for n in fp16.graph.node if n.op_type == "Sigmoid"]
    assert sigmoids and all(types[n.input[0]] == types[n.output[0]] == onnx.TensorProto.FLOAT for n in sigmoids)

    # cbam-validate rebuilds the eager model by importing the user's factory and checkpoint again.
    capsys.readouterr()
    assert validate_main([str(out / example), "--trust-model-code", "--precisions", "fp32,fp16", "--backends", "onnxruntime-cpu",
                          "--batch-sizes", "1,2"]) == 0, capsys.readouterr().err


def _leftovers(out: Path) -> list[str]:
    return [str(p) for p in out.rglob("*")] if out.exists() else []


@pytest.mark.parametrize("ref, shapes, message", [
    (f"{BROKEN}:raising_factory", ["1x3x8x8"], "broken_models.py, line 7: ValueError: width 8 is not supported"),
    (f"{BROKEN}:four_channels", ["1x3x8x8"], "forward failed on example input(s) of shape 1x3x8x8 at "),
    (str(REPO / "tests" / "fixtures" / "import_error_model.py") + ":build_net", ["1x3x8x8"],
     "import_error_model.py, line 2: ModuleNotFoundError"),
    (f"{BROKEN}:four_channels", [], "--model needs --input-shape"),
])
def test_errors_in_user_code_are_one_line_and_leave_nothing(tmp_path, capsys, ref, shapes, message):
    out = tmp_path / "models"
    args = ["--model", ref, "--out", str(out)] + [a for s in shapes for a in ("--input-shape", s)]
    assert export_main(args) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("cbam-export: error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in err, err
    if "forward failed" in message:
        assert "broken_models.py, line 16: RuntimeError" in errors[0]  # the user's line, not torch's
    assert _leftovers(out) == []


@pytest.mark.parametrize("extra, message", [
    (["--variant", "dual_bn"], "--variant configure the built-in hosts"),
    (["--weights", "reference"], "--weights reference is for the built-in hosts"),
    (["--model-kwargs", "{width: 3}"], "--model-kwargs is not valid JSON"),
])
def test_built_in_options_are_refused_with_model(tmp_path, capsys, extra, message):
    code = export_main(["--model", f"{BROKEN}:four_channels", "--input-shape", "1x4x8x8", "--out", str(tmp_path), *extra])
    assert code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("factory", ["coordatt_yolo.py:build_net", "mobilenetv3_se.py:build_net"])
def test_coordinate_attention_and_hard_sigmoid_se_through_cbam_export(tmp_path, capsys, factory):
    """The issue's user session: Coordinate Attention refused to export ((None, 1) pooling) and a
    MobileNetV3 SE ran its hard-sigmoid gates in FP16. Now: --dynamic all, FP16, every gate FP32."""
    out = tmp_path / "models"
    args = ["--model", f"{EXAMPLES / factory}", "--input-shape", "1x3x64x64", "--dynamic", "all",
            "--precision", "fp16", "--name", "net", "--out", str(out)]
    assert export_main(args) == 0, capsys.readouterr().err
    report = json.loads((out / "net" / "export.json").read_text())
    assert report["passed"] and any("not traced" in c["label"] and c["passed"] for c in report["parity"]["cases"])
    kept = report["metadata"]["precision_details"]["kept_fp32_ops"]
    if factory.startswith("coordatt"):
        assert kept["Sigmoid"] == 6 + 1  # a_h and a_w of three blocks; the head's class-score Sigmoid
    else:
        assert kept["Div"] == 3 and kept["Clip"] == 3  # relu6(x + 3) / 6 of three SE gates, not the h_swish
