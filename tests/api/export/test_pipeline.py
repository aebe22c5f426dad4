"""The export end to end (``cbam_deploy.export`` and cbam-export): zero BatchNormalization nodes,
parity re-checked here independently of the export's own parity code, metadata, atomic writes, the
choice of exporter and the FP32 gate that adapts to the model's float32 floor."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from cbam_deploy import create_model, export, list_variants
from cbam_deploy.cli.export import main as export_main
from cbam_deploy.errors import CheckFailedError, UsageError
from cbam_deploy.onnx_export import read_metadata
from cbam_deploy.options import EXPORTERS
from tests.conftest import randomize_batchnorm
from tests.seed_modules import build_seed_cbam

# Shares the session-wide exports (tests/conftest.py) with the other module of this group.

def ort_run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def scaled_error(a, b) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def checkpoint(tmp_path: Path, arch: str, variant: str) -> tuple[Path, torch.nn.Module]:
    model = randomize_batchnorm(create_model(arch, variant, channels=64), seed=7).eval()
    path = tmp_path / f"{arch}_{variant}.pt"
    torch.save({"state_dict": model.state_dict()}, path)
    return path, model


def export_cli(tmp_path: Path, *args: str, capsys=None) -> dict:
    code = export_main([*args, "--out", str(tmp_path / "models"), "--json"])
    out = capsys.readouterr().out if capsys else ""
    assert code == 0
    return json.loads(out)


@pytest.mark.parametrize("arch", ["cbam", "resnet18", pytest.param("resnet50", marks=pytest.mark.slow)])
@pytest.mark.parametrize("variant", list_variants())
def test_export_has_no_batchnorm_and_matches_eager_at_batch_3(variant, arch, exported_host):
    exported = exported_host(arch, variant)
    model, report, shape = exported.model, exported.report, exported.shape
    assert report["passed"]
    ops = report["ops"]["after_simplify"]
    assert "BatchNormalization" not in ops and "Identity" not in ops
    assert report["fold"]["unfolded"] == {}
    onnx_path = Path(report["onnx"])
    x = np.random.default_rng(3).standard_normal((3, *shape[1:])).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert scaled_error(ort_run(onnx_path, x), ref) < 1e-4


@pytest.mark.parametrize("variant", list_variants())
def test_dynamic_all_holds_at_another_resolution(variant, tmp_path, capsys):
    ckpt, model = checkpoint(tmp_path, "resnet18", variant)
    report = export_cli(tmp_path, "--arch", "resnet18", "--variant", variant, "--weights", str(ckpt),
                        "--input-shape", "1x3x64x64", "--dynamic", "all", capsys=capsys)
    labels = [c["label"] for c in report["parity"]["cases"]]
    assert any("not traced" in label for label in labels)
    x = np.random.default_rng(4).standard_normal((2, 3, 96, 128)).astype(np.float32)  # non-square, untraced
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert scaled_error(ort_run(Path(report["onnx"]), x), ref) < 1e-4
    dims = onnx.load(report["onnx"]).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "height", "width"]


@pytest.mark.parametrize("variant", list_variants())
def test_checkpoint_from_seed_code_exports_and_matches_the_seed_module(variant, tmp_path, capsys):
    seed = randomize_batchnorm(build_seed_cbam(variant, 64, kernel_size=7), seed=5).eval()
    torch.save(seed.state_dict(), tmp_path / "seed.pt")
    report = export_cli(tmp_path, "--arch", "cbam", "--variant", variant, "--weights", str(tmp_path / "seed.pt"),
                        "--input-shape", "1x64x16x16", capsys=capsys)
    x = np.random.default_rng(5).standard_normal((3, 64, 16, 16)).astype(np.float32)
    with torch.no_grad():
        ref = seed(torch.from_numpy(x)).numpy()
    assert scaled_error(ort_run(Path(report["onnx"]), x), ref) < 1e-5


def test_metadata_and_report_describe_the_model(tmp_path, capsys):
    ckpt, _ = checkpoint(tmp_path, "resnet18", "dual_bn")
    report = export_cli(tmp_path, "--arch", "resnet18", "--variant", "dual_bn", "--weights", str(ckpt),
                        "--input-shape", "1x3x64x64", "--kernel-size", "7", "--name", "mine", capsys=capsys)
    onnx_path = Path(report["onnx"])
    assert onnx_path == tmp_path / "models" / "mine" / "1" / "model.onnx"
    on_disk = json.loads((tmp_path / "models" / "mine" / "export.json").read_text())
    assert on_disk["sha256"] == hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    meta = read_metadata(onnx.load(str(onnx_path)))
    assert meta["variant"] == "dual_bn" and meta["host"] == "resnet18"
    assert meta["kernel_size"] == 7 and meta["ratio"] == 16 and meta["num_classes"] == 1000
    assert meta["input_names"] == ["input"] and meta["input_shapes"] == [[1, 3, 64, 64]]
    assert meta["dynamic_axes"] == {"input": {"0": "batch"}} and meta["opset"] == 18
    assert meta["preprocessing"]["mean"] == [0.485, 0.456, 0.406] and meta["preprocessing"]["input_size"] == [64, 64]
    assert meta["checkpoint_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert set(meta["versions"]) >= {"cbam_deploy", "torch", "onnx", "onnxruntime", "onnxsim"}
    assert on_disk["ops"]["before_simplify"] and on_disk["ops"]["after_simplify"]


class ExportsDifferently(torch.nn.Module):
    """Computes something else while being exported: parity must catch it."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y * 1.01 if torch.onnx.is_in_onnx_export() else y


def test_parity_failure_raises_says_by_how_much_and_writes_nothing(tmp_path):
    with pytest.raises(CheckFailedError, match=r"scaled error 0.01 > 0.0001 \(100.0x the tolerance\)"):
        export(ExportsDifferently().eval(), (torch.randn(1, 3, 16, 16),), name="bad", out=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_existing_model_needs_force_and_force_replaces_it(tmp_path):
    model = create_model("cbam", "original", channels=32).eval()
    first = export(model, (torch.randn(1, 32, 8, 8),), name="m", out=tmp_path)
    with pytest.raises(UsageError, match="already exists; pass --force"):
        export(model, (torch.randn(1, 32, 8, 8),), name="m", out=tmp_path)
    second = export(model, (torch.randn(1, 32, 8, 8),), name="m", out=tmp_path, force=True)
    assert second.onnx_path.exists() and first.onnx_path == second.onnx_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_interrupt_mid_export_leaves_nothing(tmp_path, monkeypatch):
    from cbam_deploy.api.export import parity

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(parity, "run_onnxruntime", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export(create_model("cbam", "original", channels=32).eval(), (torch.randn(1, 32, 8, 8),),
                     name="m", out=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_training_mode_model_is_refused(tmp_path):
    with pytest.raises(UsageError, match="training mode"):
        export(create_model("cbam", "original", channels=32), (torch.randn(2, 32, 8, 8),), name="m", out=tmp_path)


def test_tolerance_override_is_explicit_and_recorded(tmp_path, capsys):
    args = ["--arch", "cbam", "--variant", "original", "--input-shape", "1x32x8x8", "--out", str(tmp_path), "--json"]
    assert export_main([*args, "--max-scaled-error", "1e-3"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["parity"]["tolerance"]["max_scaled_error"] == 1e-3
    assert "set to 0.001 by the caller (table: 0.0001)" in captured.err
    assert report["parity"]["gate"]["source"] == "caller"
    assert export_main([*args, "--max-scaled-error", "0", "--force"]) == 2


class SlightlyOff(torch.nn.Module):
    """Eager and the exported graph differ by a relative ``error``: a stand-in for float32 rounding
    (small) or a wrong graph (large)."""

    def __init__(self, error: float):
        super().__init__()
        self.error = error
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y * (1 + self.error) if torch.onnx.is_in_onnx_export() else y


def test_fp32_gate_adapts_to_the_float32_floor_and_reports_both(tmp_path, monkeypatch):
    import cbam_deploy.compare.conditioning as conditioning
    from cbam_deploy.compare.tolerances import FLOOR_MULTIPLE

    # A network float32 cannot resolve better than 1e-4: 2e-4 between two float32 computations is honest.
    monkeypatch.setattr(conditioning, "float32_floor", lambda module, feeds, input_names=None: 1e-4)
    report = export(SlightlyOff(2e-4).eval(), (torch.randn(1, 3, 16, 16),), name="m", out=tmp_path)
    gate = report.to_dict()["parity"]["gate"]
    assert report.passed and gate["table"] == 1e-4 and gate["float32_floor"] == 1e-4
    assert gate["gate"] == pytest.approx(FLOOR_MULTIPLE * 1e-4) and gate["source"] == "float32 floor"


@pytest.mark.parametrize("error", [2e-4, 1e-2])
def test_fp32_gate_negative_control_a_wrong_graph_still_fails(tmp_path, error):
    # The model's real floor (a single conv: ~1e-7) leaves the gate at the table's 1e-4.
    with pytest.raises(CheckFailedError, match=r"parity against eager failed.*float32 floor"):
        export(SlightlyOff(error).eval(), (torch.randn(1, 3, 16, 16),), name="bad", out=tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("variant", list_variants())
def test_both_exporters_give_the_same_graph_dynamic_and_global(variant, exporter, tmp_path):
    model = randomize_batchnorm(create_model("cbam", variant, channels=32), seed=3, gamma=(0.2, 0.6)).eval()
    report = export(model, (torch.randn(1, 32, 16, 16),), name="m", out=tmp_path, dynamic="all", exporter=exporter)
    assert report.passed and report.metadata["exporter"] == exporter
    ops = report.ops_after_simplify
    assert "BatchNormalization" not in ops and "AveragePool" not in ops  # global pooling stayed global
    assert any("not traced" in c.label for c in report.parity.cases)
    proto = onnx.load(str(report.onnx_path))
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 32, "height", "width"]
    x = np.random.default_rng(9).standard_normal((3, 32, 24, 40)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert scaled_error(ort_run(report.onnx_path, x), ref) < 1e-4


def test_tracer_warnings_are_reported_as_notes(tmp_path):
    class Branches(torch.nn.Module):
        def forward(self, x):
            scale = 2.0 if float(x.mean()) < 100 else 0.0  # a Python value frozen into a trace
            return x * scale

    report = export(Branches().eval(), (torch.randn(1, 3, 8, 8),), name="m", out=tmp_path, exporter="torchscript")
    assert report.passed
    assert any(n.startswith("TorchScript tracer: test_pipeline.py, line") and "Python float" in n for n in report.notes)


@pytest.mark.parametrize("variant", list_variants())
def test_global_pooling_stays_global_at_a_static_resolution(variant, tmp_path):
    # The TorchScript exporter writes AdaptiveMaxPool2d(1) at a static size as a fixed-kernel MaxPool;
    # FP16 keeps only Global*Pool in FP32, so the export writes it back as GlobalMaxPool.
    model = randomize_batchnorm(create_model("cbam", variant, channels=32), seed=4, gamma=(0.2, 0.6)).eval()
    report = export(model, (torch.randn(1, 32, 16, 16),), name="m", out=tmp_path, dynamic="batch",
                    exporter="torchscript")
    ops = report.ops_after_optimize
    assert report.passed and "MaxPool" not in ops and "AveragePool" not in ops
