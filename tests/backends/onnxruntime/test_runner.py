"""The ONNX Runtime runner: exact provider or an error, input validation, thread safety."""

from __future__ import annotations

import concurrent.futures

import numpy as np
import onnxruntime as ort
import pytest
import torch

from cbam_deploy import create_model, export
from cbam_deploy.backends.onnxruntime import OnnxRuntimeRunner
from cbam_deploy.errors import MissingDependencyError, UsageError


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    model = create_model("cbam", "parallel", channels=32).eval()
    return export(model, (torch.randn(1, 32, 8, 8),), name="m", out=out, dynamic="all").onnx_path


@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_gpu_provider_without_gpu_is_an_error_not_a_cpu_run(model_path, provider):
    from cbam_deploy.backends.cuda_runtime import probe

    if "CUDAExecutionProvider" in ort.get_available_providers() and probe().gpus:
        pytest.skip("a GPU is present: the provider can be honoured")
    runner = OnnxRuntimeRunner(model_path, provider=provider)
    with pytest.raises(MissingDependencyError, match="libraries not found|needs an NVIDIA GPU|not in this onnxruntime") as err:
        runner.__enter__()
    assert "\n" not in str(err.value) and not runner.is_active and runner.session is None


def test_unknown_provider(model_path):
    with pytest.raises(UsageError, match="unknown provider 'tpu'; valid: cpu, cuda, tensorrt"):
        OnnxRuntimeRunner(model_path, provider="tpu").__enter__()


@pytest.mark.parametrize("feed, message", [
    ({"x": np.zeros((1, 32, 8, 8), np.float32)}, r"missing: \['input'\], unexpected: \['x'\]"),
    ({"input": np.zeros((1, 32, 8, 8), np.float64)}, "dtype float64, the model expects float32"),
    ({"input": np.zeros((1, 16, 8, 8), np.float32)}, r"shape \[1, 16, 8, 8\], the model expects input: float32\[batchx32xheightxwidth\]"),
    ({"input": np.zeros((32, 8, 8), np.float32)}, r"shape \[32, 8, 8\]"),
    ({"input": np.full((1, 32, 8, 8), np.nan, np.float32)}, "contains NaN or Inf"),
])
def test_bad_feeds_are_one_line_errors(model_path, feed, message):
    with OnnxRuntimeRunner(model_path) as runner:
        with pytest.raises(UsageError, match=message) as err:
            runner.infer(feed)
    assert "\n" not in str(err.value)


def test_nonfinite_allowed_when_asked(model_path):
    with OnnxRuntimeRunner(model_path, allow_nonfinite=True) as runner:
        out = runner.infer({"input": np.full((1, 32, 8, 8), np.inf, np.float32)})
    assert not np.isfinite(out["output"]).all()


def test_runner_must_be_active(model_path):
    with pytest.raises(RuntimeError, match="context manager"):
        OnnxRuntimeRunner(model_path).infer({"input": np.zeros((1, 32, 8, 8), np.float32)})


def test_concurrent_calls_give_the_sequential_answers(model_path):
    rng = np.random.default_rng(0)
    feeds = [rng.standard_normal((1 + i % 3, 32, 8 + i % 2, 8), dtype=np.float32) for i in range(24)]
    with OnnxRuntimeRunner(model_path) as runner:
        sequential = [runner.infer({"input": x})["output"] for x in feeds]
        with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
            parallel = list(pool.map(lambda x: runner.infer({"input": x})["output"], feeds))
    for a, b in zip(sequential, parallel):
        np.testing.assert_array_equal(a, b)


def test_optimized_cache_is_written_then_used_and_rebuilt_when_the_model_changes(model_path, tmp_path):
    cache = tmp_path / "cache" / "model.ort.onnx"
    x = np.random.default_rng(0).standard_normal((2, 32, 8, 8)).astype(np.float32)
    with OnnxRuntimeRunner(model_path) as plain:
        want = plain.infer({"input": x})["output"]
    with OnnxRuntimeRunner(model_path, optimized_cache=cache) as first:
        assert first.cache_hit is False and cache.is_file()
        np.testing.assert_allclose(first.infer({"input": x})["output"], want, rtol=0, atol=1e-6)
    with OnnxRuntimeRunner(model_path, optimized_cache=cache) as second:
        assert second.cache_hit is True
        np.testing.assert_allclose(second.infer({"input": x})["output"], want, rtol=0, atol=1e-6)
    # Another model under the same cache path: the stamp's SHA-256 differs, so the cache is rebuilt.
    other = tmp_path / "other.onnx"
    other.write_bytes(model_path.read_bytes())  # same bytes, other path: still a hit
    with OnnxRuntimeRunner(other, optimized_cache=cache) as same:
        assert same.cache_hit is True
    import onnx

    changed = onnx.load(str(model_path))
    changed.doc_string = "changed"
    onnx.save(changed, str(other))
    with OnnxRuntimeRunner(other, optimized_cache=cache) as rebuilt:
        assert rebuilt.cache_hit is False
    assert not list(cache.parent.glob(".*partial"))
