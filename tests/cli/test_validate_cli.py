"""cbam-validate: passes every ONNX Runtime precision on a reference model, names the failing cell
of a corrupted model, and never counts an absent backend as passed."""

from __future__ import annotations

import json

import onnx
import pytest

from cbam_deploy.cli.export import main as export_main
from cbam_deploy.cli.validate import main as validate_main


@pytest.fixture(scope="module")
def reference_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    assert export_main(["--variant", "original", "--out", str(out), "--dynamic", "all"]) == 0
    return out / "original_resnet_mini"


def test_all_onnxruntime_precisions_pass_and_absent_backends_are_skipped(reference_model, tmp_path):
    code = validate_main([str(reference_model), "--json-out", str(tmp_path / "v.json"), "--markdown", str(tmp_path / "v.md"),
                          "--accuracy-count", "500"])
    assert code == 0
    cells = json.loads((tmp_path / "v.json").read_text())["cells"]
    by = {(c["backend"], c["precision"]): c for c in cells}
    for precision in ("fp32", "fp16", "int8"):
        cell = by["onnxruntime-cpu", precision]
        assert cell["status"] == "pass", cell["failures"]
        labels = [case["label"] for case in cell["parity"]["cases"]]
        assert "batch 1 @ 64x64" in labels and "batch 4 @ 64x64" in labels  # both batch sizes at the traced size
        assert any(label.startswith("batch 4 @") and not label.endswith("64x64") for label in labels), labels  # and another
        assert cell["accuracy"]["accuracy_drop_points"] <= 0.5
    skipped = [c for c in cells if c["status"] == "skipped"]
    assert skipped and all(c["reason"] for c in skipped)  # never passed, always with a reason
    assert "| onnxruntime-cpu | int8 | pass |" in (tmp_path / "v.md").read_text()


def test_corrupted_model_fails_naming_the_cell(reference_model, tmp_path, capsys):
    model = onnx.load(str(reference_model / "1" / "model.onnx"))
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    weight = next(t for t in model.graph.initializer if t.name == conv.input[1])
    array = onnx.numpy_helper.to_array(weight).copy()
    array[0] *= -3.0  # one corrupted filter
    weight.CopyFrom(onnx.numpy_helper.from_array(array, weight.name))
    (tmp_path / "bad" / "1").mkdir(parents=True)
    onnx.save(model, tmp_path / "bad" / "1" / "model.onnx")
    # --no-verify: the folder is hand-made (no export.json to check the file against).
    code = validate_main([str(tmp_path / "bad"), "--precisions", "fp32", "--backends", "onnxruntime-cpu",
                          "--accuracy-count", "100", "--no-verify"])
    err = capsys.readouterr().err
    assert code == 1
    assert "cbam-validate: error: validation failed: onnxruntime-cpu fp32: " in err and "scaled error" in err
    # The failure is localized without being asked: the first Conv of the graph is the stem, conv1.
    assert "first module out of tolerance: conv1 " in err


@pytest.mark.parametrize("args, message", [
    (["--precisions", "fp8"], "--precisions 'fp8': unknown fp8; valid: fp32, fp16, int8"),
    (["--backends", "tpu"], "--backends 'tpu': unknown tpu"),
    (["--batch-sizes", "0"], "--batch-sizes '0': every value must be a positive integer"),
    (["--accuracy-count", "0"], "--accuracy-count: '0' is not a positive integer"),
])
def test_bad_options(reference_model, capsys, args, message):
    assert validate_main([str(reference_model), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_missing_model(tmp_path, capsys):
    assert validate_main([str(tmp_path / "nothing")]) == 2
    assert "is not an exported model" in capsys.readouterr().err


def test_a_hand_corrupted_export_fails_naming_the_layer_and_the_changed_file(reference_model, tmp_path, capsys):
    """The user's case: one layer's weights edited in place inside an exported folder (export.json
    still records the original SHA-256). The file is validated anyway; one error line says both that
    the file changed and which PyTorch module breaks parity."""
    import shutil

    folder = tmp_path / "edited"
    shutil.copytree(reference_model, folder)
    model = onnx.load(str(folder / "1" / "model.onnx"))
    weight = next(t for t in model.graph.initializer if t.name == "layer3.0.conv2.weight")  # the user's own name
    weight.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(weight) * 1.5, weight.name))
    onnx.save(model, folder / "1" / "model.onnx")
    code = validate_main([str(folder), "--precisions", "fp32", "--backends", "onnxruntime-cpu", "--localize",
                          "--accuracy-count", "100"])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("cbam-validate:")]
    assert code == 1
    assert len(errors) == 1, errors
    assert "does not match the SHA-256" in errors[0] and "first module out of tolerance: layer3.0.conv2 " in errors[0]
