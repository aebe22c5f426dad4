"""cbam-export --precision: calibration sources and their errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cbam_deploy.cli.dataset import main as dataset_main
from cbam_deploy.cli.export import main as export_main

BASE = ["--arch", "resnet18", "--variant", "dual_bn", "--input-shape", "1x3x64x64", "--precision", "int8"]


def test_calibration_from_an_image_folder(tmp_path, capsys):
    assert dataset_main([str(tmp_path / "calib"), "--split", "train", "--count", "24"]) == 0
    assert export_main([*BASE, "--calibration", str(tmp_path / "calib"), "--out", str(tmp_path / "m"), "--json"]) == 0
    details = json.loads(capsys.readouterr().out.split("\n", 1)[1])["metadata"]["precision_details"]
    assert details["calibration_samples"] == 24 and "24 images from" in details["calibration"]
    assert details["warnings"] == []


def test_calibration_from_npy(tmp_path, capsys):
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).standard_normal((16, 3, 64, 64)).astype(np.float32))
    assert export_main([*BASE, "--calibration", str(tmp_path / "cal.npy"), "--out", str(tmp_path / "m"), "--json"]) == 0
    details = json.loads(capsys.readouterr().out)["metadata"]["precision_details"]
    assert details["calibration_samples"] == 16


@pytest.mark.parametrize("extra, message", [
    ([], "--precision int8 needs --calibration"),
    (["--calibration", "nowhere"], "is neither a folder of images, a .npy file"),
    (["--calibration", "reference"], "only for reference-task models"),
    (["--calibration", "BADNPY"], "has shape [16, 64, 64]; expected N x 3 x H x W"),
    (["--calibration", "EMPTYDIR"], "no images"),
])
def test_calibration_errors_are_one_line_exit_2(tmp_path, capsys, extra, message):
    np.save(tmp_path / "bad.npy", np.zeros((16, 64, 64), np.float32))
    (tmp_path / "empty").mkdir()
    extra = [{"BADNPY": str(tmp_path / "bad.npy"), "EMPTYDIR": str(tmp_path / "empty")}.get(a, a) for a in extra]
    code = export_main([*BASE, *extra, "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert [line for line in err.splitlines() if "error" in line] == [err.strip().splitlines()[-1]]
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


def test_calibration_without_int8_is_refused(tmp_path, capsys):
    code = export_main(["--arch", "cbam", "--variant", "original", "--calibration", "synthetic", "--out", str(tmp_path)])
    assert code == 2 and "only used with --precision int8" in capsys.readouterr().err


def test_synthetic_calibration_is_flagged(tmp_path, capsys):
    assert export_main([*BASE, "--calibration", "synthetic", "--out", str(tmp_path), "--json"]) == 0
    captured = capsys.readouterr()
    assert "synthetic" in json.loads(captured.out)["metadata"]["precision_details"]["calibration"]
    assert "not representative" in captured.err
