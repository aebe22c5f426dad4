"""cbam-dataset and cbam-evaluate on the reference task."""

from __future__ import annotations

import json

from cbam_deploy.cli.dataset import main as dataset_main
from cbam_deploy.cli.evaluate import main as evaluate_main
from cbam_deploy.cli.export import main as export_main
from cbam_deploy.models.spec import reference_checkpoint


def test_dataset_refuses_a_non_empty_folder(tmp_path, capsys):
    assert dataset_main([str(tmp_path), "--count", "3"]) == 0
    assert len(list(tmp_path.glob("*.png"))) == 3
    assert dataset_main([str(tmp_path), "--count", "3"]) == 2
    assert "not empty" in capsys.readouterr().err


def test_evaluate_checkpoint_and_exported_model_agree(tmp_path, capsys):
    assert evaluate_main([str(reference_checkpoint("original")), "--count", "200", "--json"]) == 0
    eager = json.loads(capsys.readouterr().out)
    assert eager["backend"] == "torch-eager" and eager["top1"] >= 0.9
    assert export_main(["--variant", "original", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert evaluate_main([str(tmp_path / "original_resnet_mini"), "--count", "200", "--json"]) == 0
    ort = json.loads(capsys.readouterr().out)
    assert ort["backend"] == "onnxruntime[cpu]" and ort["top1"] == eager["top1"] and ort["top1_agreement"] == 1.0


def test_evaluate_refuses_non_reference_models(tmp_path, capsys):
    assert export_main(["--arch", "cbam", "--variant", "original", "--input-shape", "1x32x8x8", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert evaluate_main([str(tmp_path / "original_cbam")]) == 2
    assert "not a reference-task model" in capsys.readouterr().err
