"""The OpenVINO runner: parity per variant, the precision hint it was compiled with, the model cache,
attention kept f32 in bf16, and one-line errors for a missing package or a CPU without BF16."""

from __future__ import annotations

import numpy as np
import pytest

from cbam_deploy.backends import backend_problem, open_runner
from cbam_deploy.backends.openvino import loader as ov_loader
from cbam_deploy.compare import tolerance_for
from cbam_deploy.compare.parity import compare_output
from cbam_deploy.errors import MissingDependencyError, UsageError
from cbam_deploy.model_dir import ExportedModel

from .conftest import VARIANTS

HAS_BF16 = ov_loader.bf16_problem() is None
needs_bf16 = pytest.mark.skipif(not HAS_BF16, reason="this CPU has no native BF16 (AVX-512 BF16 or AMX)")


def _heldout(n: int = 8) -> np.ndarray:
    from cbam_deploy.reference.evaluate import heldout_batch

    return heldout_batch(n)[0].astype(np.float32)


def _parity(model: ExportedModel, runner, precision: str):
    x = _heldout()
    with model.eager_runner() as eager:
        ref = eager.infer({model.input_name: x})[model.output_names[0]]
    out = runner.infer({model.input_name: x})[model.output_names[0]]
    return compare_output("logits", out, ref, tolerance_for(precision), classifier=True)


@pytest.mark.parametrize("variant", VARIANTS)
def test_fp32_parity_with_the_f32_hint_compiled(mini_export, variant, tmp_path):
    model = ExportedModel.open(mini_export(variant))
    with open_runner("openvino", model, threads=1, cache_dir=tmp_path / "cache") as runner:
        result = _parity(model, runner, "fp32")
        # What the compiled model itself reports: f32, although this CPU would default to bf16.
        assert str(runner.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()) == "f32"
        assert runner.inference_precision == "f32"
        assert runner.compiled.get_property("INFERENCE_NUM_THREADS") == 1
        assert runner.compiled.get_property("NUM_STREAMS") == 1
    assert result.passed, result.failures
    assert result.scaled_error <= tolerance_for("fp32").max_scaled_error


@needs_bf16
@pytest.mark.parametrize("variant", VARIANTS)
def test_bf16_parity_within_its_gate_and_attention_kept_f32(mini_export, variant, tmp_path):
    from cbam_deploy.backends.openvino.keep_f32 import runtime_precisions

    model = ExportedModel.open(mini_export(variant))
    with open_runner("openvino", model, precision="bf16", cache_dir=None) as runner:
        result = _parity(model, runner, "bf16")
        precisions = runtime_precisions(runner.compiled)
        assert runner.inference_precision == "bf16" and runner.loader.kept_f32 > 0
    assert result.passed, result.failures
    assert result.scaled_error > 1e-4  # it really ran in bf16: f32 is ~5e-7 from eager here
    assert "f32" in precisions.values() and "bf16" in precisions.values()


@needs_bf16
def test_attention_layers_run_f32_only_when_kept(mini_export):
    from cbam_deploy.backends.openvino.keep_f32 import runtime_precisions

    model = ExportedModel.open(mini_export("original"))
    counts = {}
    for keep in (True, False):
        with open_runner("openvino", model, precision="bf16", cache_dir=None, keep_attention_f32=keep) as runner:
            # f32 layers besides the model's input/output and its layout reorders: the kept attention ops.
            counts[keep] = sum(v == "f32" and not name.startswith(("Reorder", "Result", "input", "logits"))
                               for name, v in runtime_precisions(runner.compiled).items())
    assert counts[True] > counts[False] + 8  # 8 blocks: at least one kept op each (measured: ~50 more)


def test_model_cache_is_created_then_used(mini_export, tmp_path):
    cache = tmp_path / "ov-cache"
    model = mini_export("original")
    model = ExportedModel.open(model)
    with open_runner("openvino", model, cache_dir=cache) as first:
        x = _heldout(2)
        a = first.infer({"input": x})["logits"]
    assert first.cache_hit is False and any(cache.iterdir())
    files = sorted(p.name for p in cache.iterdir())
    with open_runner("openvino", model, cache_dir=cache) as second:
        b = second.infer({"input": x})["logits"]
    assert second.cache_hit is True and sorted(p.name for p in cache.iterdir()) == files
    np.testing.assert_array_equal(a, b)
    with open_runner("openvino", model, cache_dir=None) as uncached:
        assert uncached.cache_hit is None


def test_default_cache_folder_is_per_user_and_can_be_moved_or_turned_off(monkeypatch, tmp_path):
    monkeypatch.delenv(ov_loader.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ov_loader.default_cache_dir() == tmp_path / "xdg" / "cbam-deploy" / "openvino"
    monkeypatch.setenv(ov_loader.CACHE_ENV, str(tmp_path / "mine"))
    assert ov_loader.default_cache_dir() == tmp_path / "mine"
    monkeypatch.setenv(ov_loader.CACHE_ENV, "off")
    assert ov_loader.default_cache_dir() is None


def test_missing_package_names_the_extra(monkeypatch, mini_export):
    import sys

    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    reason = backend_problem("openvino")
    assert reason and "\n" not in reason and '.[openvino]' in reason
    runner = open_runner("openvino", mini_export("original"))
    with pytest.raises(MissingDependencyError, match=r'pip install -e "\.\[openvino\]"'):
        runner.__enter__()
    assert not runner.is_active


def test_bf16_without_the_cpu_capability_is_one_line_naming_it(monkeypatch, mini_export):
    monkeypatch.setattr(ov_loader, "cpu_capabilities", lambda core=None: ["FP32", "INT8", "EXPORT_IMPORT"])
    runner = open_runner("openvino", mini_export("original"), precision="bf16", cache_dir=None)
    with pytest.raises(MissingDependencyError, match="AVX-512 BF16 or AMX.*no BF16") as err:
        runner.__enter__()
    assert "\n" not in str(err.value)


def test_bad_precision_and_bad_model_are_usage_errors(mini_export, tmp_path):
    with pytest.raises(UsageError, match="fp32 or bf16"):
        open_runner("openvino", mini_export("original"), precision="fp16")
    with pytest.raises(UsageError, match="could not read the model"):
        open_runner("openvino", b"not an onnx model", cache_dir=None).__enter__()
    with pytest.raises(UsageError, match="no ONNX model at"):
        open_runner("openvino", tmp_path / "missing.onnx", cache_dir=None).__enter__()
    with pytest.raises(UsageError, match="takes no option spinning"):
        open_runner("openvino", mini_export("original"), spinning=False)


def test_feeds_are_validated_and_dynamic_batch_runs(mini_export):
    with open_runner("openvino", ExportedModel.open(mini_export("original")), cache_dir=None) as runner:
        assert [s.shape for s in runner.input_specs()] == [(None, 3, 64, 64)]
        assert runner.output_names() == ["logits"]
        with pytest.raises(UsageError, match="dtype float64"):
            runner.infer({"input": np.zeros((1, 3, 64, 64))})
        assert runner.infer({"input": _heldout(3)})["logits"].shape[0] == 3


@needs_bf16
def test_bf16_marked_model_is_cached_and_reused(mini_export, tmp_path):
    model = ExportedModel.open(mini_export("original"))
    x = _heldout(2)
    answers, marked = [], []
    for _ in range(2):
        with open_runner("openvino", model, precision="bf16", cache_dir=tmp_path / "c") as runner:
            answers.append(runner.infer({"input": x})["logits"])
            marked.append((runner.cache_hit, runner.loader.kept_f32, runner.inference_precision))
    assert marked[0][0] is False and marked[1][0] is True
    assert marked[0][1:] == marked[1][1:] and marked[0][1] > 0 and marked[0][2] == "bf16"
    assert len(list((tmp_path / "c" / "attention-f32").glob("*.xml"))) == 1
    np.testing.assert_array_equal(answers[0], answers[1])


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_dynamic_model_is_compiled_static_per_shape_up_to_the_limit(mini_export, tmp_path, precision):
    """The first shapes a dynamic-batch model is called with get their own static compile (faster
    kernels); later shapes run on the dynamic compile. Every path answers like the dynamic compile."""
    from cbam_deploy.api.validate import precision_models

    model = ExportedModel.open(mini_export("original"))
    onnx_model = precision_models(model, [precision], _heldout(32), "held-out")[precision]
    x = _heldout(8)
    feeds = [{model.input_name: x[:n]} for n in (1, 3, 2)]
    with open_runner("openvino", onnx_model, threads=1, cache_dir=None, static_shapes=0) as dynamic:
        expected = [dynamic.infer(f)[model.output_names[0]] for f in feeds]
        assert dynamic.static_compiled == []
    with open_runner("openvino", onnx_model, threads=1, cache_dir=None, static_shapes=2) as runner:
        got = [runner.infer(f)[model.output_names[0]] for f in feeds]
        assert runner.static_compiled == [((model.input_name, (1, 3, 64, 64)),), ((model.input_name, (3, 3, 64, 64)),)]
        compiled, _ = runner._request_for(feeds[0])
        assert compiled is not runner.compiled and compiled.inputs[0].get_partial_shape().is_static
        assert runner._request_for(feeds[2])[0] is runner.compiled  # beyond the limit: the dynamic compile
        assert runner.input_specs()[0].shape[0] is None  # the model still reports its dynamic batch
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.abs(b).max()))


def test_static_shapes_must_not_be_negative(mini_export):
    with pytest.raises(UsageError, match="static_shapes"):
        open_runner("openvino", ExportedModel.open(mini_export("original")), static_shapes=-1)
