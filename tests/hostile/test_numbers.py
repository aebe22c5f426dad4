"""Zero is a value: 0 and negative numbers are refused (or taken literally), never read as "not given".

Every numeric option of every command, and the API's numeric arguments: exit 2, one line naming
the option, nothing written in the working folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from cbam_deploy.errors import UsageError

from .conftest import assert_refused, run_cli

MODEL = "{model}"  # replaced by the exported model folder

CASES = [
    ("cbam-export", ["--num-classes", "0"], "--num-classes"),
    ("cbam-export", ["--num-classes", "-1"], "--num-classes"),
    ("cbam-export", ["--ratio", "0"], "--ratio"),
    ("cbam-export", ["--ratio", "-2"], "--ratio"),
    ("cbam-export", ["--kernel-size", "0"], "--kernel-size"),
    ("cbam-export", ["--max-scaled-error", "0"], "--max-scaled-error"),
    ("cbam-export", ["--max-scaled-error", "nan"], "--max-scaled-error"),
    ("cbam-export", ["--opset", "0"], "opset"),
    ("cbam-export", ["--input-shape", "0x3x64x64"], "0x3x64x64"),
    ("cbam-infer", [MODEL, "x.npy", "--top-k", "0"], "--top-k"),
    ("cbam-infer", [MODEL, "x.npy", "--top-k", "-1"], "--top-k"),
    ("cbam-bench", [MODEL, "--runs", "0"], "--runs"),
    ("cbam-bench", [MODEL, "--threads", "0"], "--threads"),
    ("cbam-bench", [MODEL, "--warmup", "-1"], "--warmup"),
    ("cbam-bench", [MODEL, "--seconds", "0"], "--seconds"),
    ("cbam-bench", [MODEL, "--batch-sizes", "0"], "--batch-sizes"),
    ("cbam-bench", [MODEL, "--batch-sizes", "1,0"], "--batch-sizes"),
    ("cbam-bench", [MODEL, "--batch-sizes", ""], "--batch-sizes"),
    ("cbam-validate", [MODEL, "--batch-sizes", "0"], "--batch-sizes"),
    ("cbam-validate", [MODEL, "--accuracy-count", "0"], "--accuracy-count"),
    ("cbam-validate", [MODEL, "--resolutions", "0x32"], "0x32"),
    ("cbam-evaluate", [MODEL, "--count", "0"], "--count"),
    ("cbam-train", ["--epochs", "0"], "--epochs"),
    ("cbam-train", ["--lr", "0"], "--lr"),
    ("cbam-train", ["--batch-size", "0"], "--batch-size"),
    ("cbam-train", ["--train-count", "0"], "--train-count"),
    ("cbam-train", ["--threads", "0"], "--threads"),
    ("cbam-dataset", ["--count", "0"], "--count"),
    ("cbam-build", [MODEL, "--max-batch", "0"], "--max-batch"),
    ("cbam-build", [MODEL, "--workspace", "0"], "--workspace"),
    ("cbam-serve", [MODEL, "--http-port", "0"], "port"),
    ("cbam-serve", [MODEL, "--http-port", "70000"], "port"),
    ("cbam-serve", [MODEL, "--instances", "0"], "--instances"),
    ("cbam-serve", [MODEL, "--threads", "0"], "--threads"),
    ("cbam-serve", [MODEL, "--exit-timeout", "-1"], "--exit-timeout"),
]


@pytest.mark.parametrize("command, argv, needle", CASES, ids=[f"{c}{' '.join(a[-2:])}" for c, a, _ in CASES])
def test_zero_and_negative_options_are_refused(capfd, tmp_path: Path, monkeypatch, exported: Path,
                                               command: str, argv: list[str], needle: str):
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 32, 32), np.float32))
    argv = [str(exported) if a == MODEL else a for a in argv]
    assert_refused(run_cli(capfd, command, *argv), command, 2, needle)
    assert os.listdir(tmp_path) == ["x.npy"]


@pytest.mark.parametrize("kwargs", [{"num_classes": 0}, {"ratio": 0}, {"ratio": -4}, {"kernel_size": 0},
                                    {"channels": 0}])
def test_model_spec_reads_zero_as_zero(kwargs: dict[str, int]):
    """``ModelSpec(num_classes=0)`` was a 1000-class network and ``ratio=0`` ratio 16."""
    from cbam_deploy.models.spec import ModelSpec, build_model

    arch = "cbam" if "channels" in kwargs else "resnet_mini"
    with pytest.raises(UsageError, match=next(iter(kwargs))):
        build_model(ModelSpec(arch=arch, variant="original", weights="random", **kwargs))


@pytest.mark.parametrize("kwargs", [{"num_classes": 0}, {"ratio": 0}, {"kernel_size": 0}])
def test_create_model_refuses_zero(kwargs: dict[str, int]):
    from cbam_deploy.models import create_model

    with pytest.raises(UsageError):
        create_model("resnet_mini", "original", **kwargs)


def test_api_export_refuses_a_batch_of_zero_before_any_stage(tmp_path: Path):
    from cbam_deploy.api.export import export
    from cbam_deploy.models import create_model

    model = create_model("resnet_mini", "original", num_classes=4).eval()
    with pytest.raises(UsageError, match="empty"):
        export(model, torch.zeros(0, 3, 32, 32), out=tmp_path, name="zero")
    assert os.listdir(tmp_path) == []


def test_runner_refuses_an_empty_batch_before_onnx_runtime(exported: Path):
    from cbam_deploy.backends.onnxruntime import OnnxRuntimeRunner

    with OnnxRuntimeRunner(exported / "1" / "model.onnx") as runner:
        with pytest.raises(UsageError, match="empty"):
            runner.infer({"input": np.zeros((0, 3, 32, 32), np.float32)})


@pytest.mark.parametrize("kwargs", [{"runs": 0}, {"threads": 0}, {"warmup": -1}, {"batch_sizes": (0,)},
                                    {"seconds": 0.0}])
def test_api_benchmark_refuses_zero_before_timing(exported: Path, kwargs: dict):
    from cbam_deploy.api.bench import benchmark

    with pytest.raises(UsageError):
        benchmark(exported, eager=False, **kwargs)


def test_api_validate_refuses_a_batch_size_of_zero(exported: Path):
    from cbam_deploy.api.validate import validate

    with pytest.raises(UsageError):
        validate(exported, batch_sizes=(0,), precisions=("fp32",), backends=("onnxruntime-cpu",))
