"""The shipped reference checkpoints: strict loads, >= 95 % held-out top-1 (recomputed here, not
read from the file), and the export of each keeps that accuracy in ONNX Runtime."""

from __future__ import annotations

import json

import onnxruntime as ort
import pytest

from cbam_deploy.cli.export import main as export_main
from cbam_deploy.models.spec import ModelSpec, build_model, reference_checkpoint
from cbam_deploy.reference.evaluate import evaluate_heldout, heldout_batch
from cbam_deploy.reference.train import predict_logits
from tests.conftest import VARIANTS

MIN_TOP1 = 0.95


@pytest.mark.parametrize("variant", VARIANTS)
def test_checkpoint_loads_strictly_and_reaches_95_percent(variant):
    built = build_model(ModelSpec(arch="resnet_mini", variant=variant, weights="reference"))
    assert built.load_report.complete
    report = evaluate_heldout(lambda x: predict_logits(built.model, x))
    assert report.top1 >= MIN_TOP1, f"{variant}: {report.top1:.3f}"
    assert abs(report.top1 - built.config["heldout_top1"]) < 1e-9  # the recorded figure is the real one


def test_checkpoints_are_small():
    total = sum(reference_checkpoint(v).stat().st_size for v in VARIANTS)
    assert total < 8 * 2**20


@pytest.mark.parametrize("variant", VARIANTS)
def test_fp32_export_keeps_accuracy_and_predicts_a_heldout_image(variant, tmp_path, capsys):
    assert export_main(["--variant", variant, "--out", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    acc = report["heldout_accuracy"]
    assert acc["top1_agreement"] >= 0.999 and acc["top1"] >= MIN_TOP1
    ex = report["example_prediction"]
    assert ex["predicted"] == ex["label"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_int8_loses_at_most_half_a_point_on_heldout(variant, tmp_path, capsys):
    assert export_main(["--variant", variant, "--precision", "int8", "--calibration", "reference",
                        "--out", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # Recompute independently of the export's own evaluation.
    session = ort.InferenceSession(report["onnx"], providers=["CPUExecutionProvider"])
    x, labels = heldout_batch()
    int8_top1 = float((session.run(None, {"input": x})[0].argmax(1) == labels).mean())
    built = build_model(ModelSpec(arch="resnet_mini", variant=variant, weights="reference"))
    eager_top1 = float((predict_logits(built.model, x).argmax(1) == labels).mean())
    assert 100 * (eager_top1 - int8_top1) <= 0.5, f"{variant}: eager {eager_top1:.3f}, int8 {int8_top1:.3f}"
    assert report["metadata"]["precision_details"]["qdq_pairs"] > 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_fp16_keeps_accuracy(variant, tmp_path, capsys):
    assert export_main(["--variant", variant, "--precision", "fp16", "--out", str(tmp_path), "--json"]) == 0
    acc = json.loads(capsys.readouterr().out)["heldout_accuracy"]
    assert acc["top1_agreement"] >= 0.995 and acc["accuracy_drop_points"] <= 0.5
