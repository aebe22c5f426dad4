"""cbam-validate, cbam-bench and cbam-infer with the openvino backend, on the trained reference model:
FP32/BF16/INT8 cells, side-by-side timing with ONNX Runtime, and one-line errors when OpenVINO is missing."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from cbam_deploy.cli.bench import main as bench_main
from cbam_deploy.cli.export import main as export_main
from cbam_deploy.cli.infer import main as infer_main
from cbam_deploy.cli.validate import main as validate_main

pytest.importorskip("openvino", reason="the openvino extra is not installed")


@pytest.fixture(scope="module")
def reference_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    assert export_main(["--variant", "original", "--out", str(out)]) == 0
    return out / "original_resnet_mini"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CBAM_DEPLOY_OPENVINO_CACHE", str(tmp_path / "ov-cache"))


def test_validate_fp32_bf16_int8_on_openvino(reference_model, tmp_path):
    from cbam_deploy.api.validate import validate
    from cbam_deploy.backends.openvino import bf16_problem

    code = validate_main([str(reference_model), "--backends", "openvino", "--precisions", "fp32,bf16,int8",
                          "--batch-sizes", "1,3", "--accuracy-count", "200", "--json-out", str(tmp_path / "v.json")])
    cells = {(c["backend"], c["precision"]): c for c in json.loads((tmp_path / "v.json").read_text())["cells"]}
    assert code == 0
    for precision in ("fp32", "int8"):
        assert cells["openvino", precision]["status"] == "pass", cells["openvino", precision]["failures"]
        assert cells["openvino", precision]["accuracy"]["accuracy_drop_points"] <= 0.5
    bf16 = cells["openvino", "bf16"]
    if bf16_problem() is None:
        assert bf16["status"] == "pass" and bf16["parity"]["tolerance"]["max_scaled_error"] == 5e-2
    else:
        assert bf16["status"] == "skipped" and "AVX-512 BF16 or AMX" in bf16["reason"]
    # Other backends: a skipped cell saying why, never a pass.
    (ort,) = validate(reference_model, precisions=("bf16",), backends=("onnxruntime-cpu",), batch_sizes=(1,)).cells
    assert ort.status == "skipped" and ort.reason.startswith("onnxruntime-cpu has no native bf16 (bf16 runs on: openvino")


def test_bench_times_openvino_beside_onnxruntime(reference_model, tmp_path, capsys):
    assert bench_main([str(reference_model), "--backends", "openvino,onnxruntime-cpu", "--no-eager", "--runs", "3",
                       "--warmup", "1", "--batch-sizes", "1", "--threads", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert {r["label"] for r in rows} == {"openvino fp32", "onnxruntime-cpu fp32"}
    assert all(r["runs"] == 3 and r["p50_ms"] > 0 for r in rows)


def test_bench_refuses_bf16_where_it_is_not_native(reference_model, capsys):
    assert bench_main([str(reference_model), "--backends", "onnxruntime-cpu", "--precisions", "bf16",
                       "--no-eager", "--runs", "1"]) == 2
    err = capsys.readouterr().err
    assert "cannot benchmark bf16 on onnxruntime-cpu: it has no native bf16 (bf16 runs on: openvino)" in err


def test_infer_openvino_agrees_with_onnxruntime(reference_model, tmp_path, capsys):
    from cbam_deploy.reference.evaluate import heldout_batch

    np.save(tmp_path / "x.npy", heldout_batch(6)[0].astype(np.float32))
    answers = {}
    for backend in ("openvino", "onnxruntime"):
        assert infer_main([str(reference_model), str(tmp_path / "x.npy"), "--backend", backend, "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        answers[backend] = [r["top_k"][0]["class"] for r in out["results"]]
        if backend == "openvino":
            assert out["backend"] == "openvino[cpu fp32]"
    assert answers["openvino"] == answers["onnxruntime"]


def test_missing_openvino_is_one_line_naming_the_extra(reference_model, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "openvino", None)
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 64, 64), np.float32))
    assert infer_main([str(reference_model), str(tmp_path / "x.npy"), "--backend", "openvino"]) == 3
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and 'pip install -e ".[openvino]"' in err
    assert bench_main([str(reference_model), "--backends", "openvino", "--no-eager", "--runs", "1"]) == 3
    assert '.[openvino]' in capsys.readouterr().err


def test_bf16_cell_on_a_cpu_without_bf16_is_skipped_naming_the_capability(reference_model, monkeypatch):
    from cbam_deploy.api.validate import validate
    from cbam_deploy.backends.openvino import loader

    monkeypatch.setattr(loader, "cpu_capabilities", lambda core=None: ["FP32", "INT8"])
    (cell,) = validate(reference_model, precisions=("bf16",), backends=("openvino",), batch_sizes=(1,)).cells
    assert cell.status == "skipped" and "bf16 needs a CPU with AVX-512 BF16 or AMX" in cell.reason
    assert "no BF16" in cell.reason and "\n" not in cell.reason
