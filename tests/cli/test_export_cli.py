"""cbam-export's user-facing contract: bad input -> one line, exit 2, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cbam_deploy import create_model, list_hosts, list_variants
from cbam_deploy.cli.export import main


def run(tmp_path: Path, capsys, *args: str) -> tuple[int, str]:
    code = main([*args, "--out", str(tmp_path / "models")])
    err = capsys.readouterr().err
    return code, err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("cbam-export: error")]


@pytest.fixture
def mismatched_checkpoint(tmp_path):
    torch.save(create_model("resnet18", "original").state_dict(), tmp_path / "orig.pt")
    return tmp_path / "orig.pt"


@pytest.mark.parametrize("args, message", [
    (["--variant", "dualbn"], "unknown variant 'dualbn' (did you mean 'dual_bn'?)"),
    (["--arch", "resnet5"], "unknown host network 'resnet5'"),
    (["--input-shape", "1x3x64"], "must be NxCxHxW"),
    (["--input-shape", "1x3xfoox64"], "bad shape '1x3xfoox64'"),
    (["--input-shape", "1x4x64x64"], "takes 3 input channels, got 4"),
    (["--weights", "/nonexistent/ckpt.pt"], "does not exist"),
    (["--dynamic", "sometimes"], "invalid choice: 'sometimes'"),
    (["--kernel-size", "5", "--weights", "random"], "kernel_size=5 is not allowed"),
    (["--opset", "13"], "--opset 13 is not supported"),
])
def test_bad_input_one_line_exit_2_no_files(tmp_path, capsys, args, message):
    code, err = run(tmp_path, capsys, *args)
    assert code == 2
    assert len(error_lines(err)) == 1 and message in err
    assert "Traceback" not in err
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_mismatched_checkpoint_one_line(tmp_path, capsys, mismatched_checkpoint):
    code, err = run(tmp_path, capsys, "--arch", "resnet18", "--variant", "dual_bn", "--weights", str(mismatched_checkpoint))
    assert code == 2
    assert "does not fit the model" in err and "missing (" in err and len(error_lines(err)) == 1
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_existing_output_needs_force(tmp_path, capsys):
    args = ["--arch", "cbam", "--variant", "original", "--input-shape", "1x32x8x8", "--name", "m"]
    assert run(tmp_path, capsys, *args)[0] == 0
    before = (tmp_path / "models" / "m" / "1" / "model.onnx").stat().st_mtime_ns
    code, err = run(tmp_path, capsys, *args)
    assert code == 2 and "already exists; pass --force" in err
    assert (tmp_path / "models" / "m" / "1" / "model.onnx").stat().st_mtime_ns == before
    assert run(tmp_path, capsys, *args, "--force")[0] == 0
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["m"]


def test_real_process_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cbam_deploy.cli.export", "--variant", "nope", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"cbam-export: error: unknown variant 'nope'; valid: {', '.join(list_variants())}"]


def test_list_shows_variants_and_hosts(capsys):
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in (*list_variants(), *list_hosts()):
        assert name in out


def test_help_imports_neither_torch_nor_onnx():
    code = ("import sys; from cbam_deploy.cli.export import build_parser; text = build_parser().format_help(); "
            "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'numpy') if m in sys.modules]; "
            "assert not heavy, heavy; assert '--exporter' in text and '--parity-shape' in text")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("variant", ["none", None])
def test_plain_host_is_variant_none_in_the_cli_and_none_in_the_api(tmp_path, capsys, variant):
    import json

    from cbam_deploy.api.export import BuiltinSource, ExportOptions, export_source

    if variant == "none":
        assert main(["--arch", "resnet18", "--variant", "none", "--input-shape", "1x3x32x32", "--name", "m",
                     "--out", str(tmp_path / "models"), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        meta, name = report["metadata"], "m"
    else:
        result = export_source(BuiltinSource(arch="resnet18", variant=None, input_shape=(1, 3, 32, 32)),
                               ExportOptions(out=tmp_path / "models"))
        meta, name = result.metadata, result.name
        assert name == "plain_resnet18"
    assert meta["variant"] == "none" and meta["model_spec"]["variant"] is None
    assert "Sigmoid" not in (json.loads((tmp_path / "models" / name / "export.json").read_text())["ops"]["after_optimize"])
