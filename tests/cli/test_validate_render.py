"""cbam-validate's terminal output: the gate each cell was judged by, one line per reason for the cells
that cannot run here, a one-line verdict; and piped output that is never hard-wrapped."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from cbam_deploy.api.validate import Cell, ValidationReport
from cbam_deploy.cli.export import main as export_main
from cbam_deploy.cli.render import print_validation
from cbam_deploy.cli.validate import main as validate_main
from cbam_deploy.compare.parity import judge
from cbam_deploy.compare.tolerances import tolerance_for

from ..conftest import REPO

CUDA_REASON = ("CUDA libraries not found: libcublasLt.so.13, libcublas.so.13, libcurand.so.10, libcuda.so.1 "
               "(install the CUDA 13 runtime)")


@pytest.fixture(scope="module")
def reference_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    assert export_main(["--out", str(out)]) == 0
    return out / "original_resnet_mini"


def test_validate_ends_with_a_verdict_and_folds_what_cannot_run(reference_model, capsys) -> None:
    assert validate_main([str(reference_model), "--precisions", "fp32,fp16", "--accuracy-count", "100"]) == 0
    out = capsys.readouterr()
    assert "skipped" not in out.err  # progress lines only for cells that ran
    lines = out.out.strip().splitlines()  # the table, the folded lines and the verdict (stdout)
    # fp32 and fp16 on every default backend that runs here (ONNX Runtime CPU, and OpenVINO where installed)
    assert re.match(r"verdict: PASS: (\d+) of \1 cells that ran passed; \d+ cannot run here$", lines[-1]), lines[-1]
    assert "skipped" not in "".join(line for line in lines if "│" in line)  # no skipped rows in the table
    folded = [line for line in lines if line.startswith("cannot run here: ")]
    assert folded, lines
    # one line per reason: no backend is named on two of them, and each names both precisions
    backends = [line.split(": ")[1].split(" (")[0] for line in folded]
    assert len(backends) == len(set(backends)) and all("(fp32, fp16)" in line for line in folded), folded
    assert any("<= 0.0001 (table)" in line for line in lines) and any("<= 0.02 (table)" in line for line in lines)


def _fp32_cell_under_the_floor_gate() -> Cell:
    """A real FP32 judgement: 5.9e-4 off the reference, float32's own floor 1e-4 -> gate 8e-4."""
    ref = np.linspace(-1, 1, 20, dtype=np.float32).reshape(2, 10)
    cand = ref.copy()
    cand[0, 0] += np.float32(5.9e-4)
    runs = [("batch 2 @ 64x64", {"input": np.zeros((2, 3), np.float32)}, {"logits": cand}, {"logits": ref})]
    report, _ = judge(runs, backend="onnxruntime-cpu", precision="fp32", tolerance=tolerance_for("fp32"),
                      classifier=True, floor=lambda feeds: 1e-4)
    assert report.passed and report.gate.source == "float32 floor"
    return Cell("onnxruntime-cpu", "fp32", "pass", parity=report)


def test_each_cell_shows_the_gate_it_was_judged_by(capsys) -> None:
    report = ValidationReport([_fp32_cell_under_the_floor_gate(),
                               Cell("onnxruntime-cuda", "fp32", "skipped", reason=CUDA_REASON),
                               Cell("onnxruntime-cuda", "fp16", "skipped", reason=CUDA_REASON)])
    print_validation("m", report, ("fp32", "fp16"), json_stdout=False)
    text = capsys.readouterr().out
    assert "<= 0.0008 (8x float32 floor)" in text and "scaled err <= 0.0001" not in text
    assert ("cannot run here: onnxruntime-cuda (fp32, fp16): CUDA libraries not found: libcublasLt.so.13 and 3 more"
            in text)
    assert "libcurand" not in text  # the full list stays in the JSON and Markdown reports
    assert text.strip().splitlines()[-1] == "verdict: PASS: 1 of 1 cells that ran passed; 2 cannot run here"


def test_a_failed_cell_fails_the_verdict(capsys) -> None:
    cell = _fp32_cell_under_the_floor_gate()
    report = ValidationReport([cell, Cell("onnxruntime-cpu", "fp16", "fail", failures=["NaN in logits"])])
    print_validation("m", report, ("fp32", "fp16"), json_stdout=False)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == "verdict: FAIL: 1 of 2 cells failed (onnxruntime-cpu fp16)"


def test_piped_messages_are_not_hard_wrapped(tmp_path) -> None:
    """A long stage line, piped, stays one line (rich would wrap it at 80 columns)."""
    deep = tmp_path / ("a-rather-long-folder-name-for-a-project-" * 3)
    deep.mkdir()
    net = deep / "tinynet.py"
    net.write_text("from torch import nn\n\ndef build_net():\n    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())\n")
    done = subprocess.run([sys.executable, "-m", "cbam_deploy.cli.export", "--model", f"{net}:build_net",
                           "--input-shape", "1x3x16x16", "--out", str(tmp_path / "models")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    build = [line for line in done.stderr.splitlines() if "build " in line]
    assert len(build) == 1 and str(net) in build[0] and "weights: as the factory built them" in build[0], done.stderr


def test_reasons_with_brackets_are_printed_as_written() -> None:
    """A reason naming an extra (`.[openvino]`) is text, not rich markup to be swallowed."""
    from rich.console import Console

    from cbam_deploy.cli.render import _skipped_lines

    reason = 'OpenVINO is not installed: pip install -e ".[openvino]"'
    console = Console(record=True, width=200)
    for line in _skipped_lines([Cell("openvino", "fp32", "skipped", reason=reason)]):
        console.print(line)
    assert 'pip install -e ".[openvino]"' in console.export_text()
