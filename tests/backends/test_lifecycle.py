"""Runner lifecycle (Polygraphy's, made safe to nest), the backend table and ``open_runner``: one
session per activation, a runner entered twice still works on one session, deactivation frees it,
re-activation starts clean."""

from __future__ import annotations

from contextlib import ExitStack

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from cbam_deploy.backends import BACKENDS, DEPLOY_BACKENDS, backend_problem, open_runner
from cbam_deploy.errors import UsageError
from cbam_deploy.options import BACKENDS as CLI_BACKENDS


def _tiny_model(path) -> str:
    """y = relu(x) * 2 on a dynamic batch: enough for a session, no export needed."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 4])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["r"]), helper.make_node("Mul", ["r", "two"], ["output"])],
                              "tiny", [x], [y], [two])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.save(model, str(path))
    return str(path)


@pytest.fixture
def sessions(monkeypatch):
    """Counts every ONNX Runtime session made (through the loader's ``ort.InferenceSession``)."""
    made: list[object] = []
    real = ort.InferenceSession

    def counting(*args, **kwargs):
        session = real(*args, **kwargs)
        made.append(session)
        return session

    monkeypatch.setattr(ort, "InferenceSession", counting)
    return made


def test_entered_twice_one_session_and_it_still_works(tmp_path, sessions):
    runner = open_runner("onnxruntime-cpu", _tiny_model(tmp_path / "m.onnx"))
    feed = {"input": np.array([[-1, 0, 1, 2]], np.float32)}
    with runner:
        with runner:  # what a caller does when it activates and then uses `with` again
            np.testing.assert_array_equal(runner.infer(feed)["output"], [[0, 0, 2, 4]])
        assert runner.is_active  # the inner exit only uncounts
        np.testing.assert_array_equal(runner.infer(feed)["output"], [[0, 0, 2, 4]])
    assert len(sessions) == 1 and runner.activations == 1
    assert runner.session is None and not runner.is_active
    with pytest.raises(RuntimeError, match="not active"):
        runner.infer(feed)


def test_reactivation_makes_a_fresh_session_with_clean_state(tmp_path, sessions):
    runner = open_runner("onnxruntime-cpu", _tiny_model(tmp_path / "m.onnx"))
    for _ in range(3):
        with runner:
            assert [s.name for s in runner.input_specs()] == ["input"]  # not duplicated by re-activation
            assert runner.output_names() == ["output"]
        assert runner.input_specs() == [] and runner.output_names() == []
    assert len(sessions) == 3 and len({id(s) for s in sessions}) == 3


def test_exit_stack_closes_every_runner_even_when_one_fails_to_open(tmp_path, sessions):
    path = _tiny_model(tmp_path / "m.onnx")
    first = open_runner("onnxruntime-cpu", path)
    broken = open_runner("onnxruntime-cpu", b"not an onnx model")
    with pytest.raises(UsageError, match="could not load the model"):
        with ExitStack() as stack:
            stack.enter_context(first)
            stack.enter_context(broken)
    assert not first.is_active and first.session is None and not broken.is_active


def test_table_covers_every_backend_the_commands_accept():
    assert set(DEPLOY_BACKENDS) == set(CLI_BACKENDS)
    assert {b.runs for b in BACKENDS.values()} == {"module", "onnx", "plan"}


def test_unknown_backend_and_option_are_one_line_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="unknown backend 'onnx'; valid: torch, onnxruntime-cpu"):
        open_runner("onnx", "x.onnx")
    with pytest.raises(UsageError, match="backend 'tensorrt' takes no option threads; it takes: allow_nonfinite"):
        open_runner("tensorrt", tmp_path, threads=2)


@pytest.mark.parametrize("backend", [b for b in DEPLOY_BACKENDS if b not in ("onnxruntime-cpu", "openvino")])
def test_gpu_backends_say_in_one_line_why_they_cannot_run_here(backend):
    from cbam_deploy.backends.cuda_runtime import probe

    if probe().gpus:
        pytest.skip("a GPU is visible: whether these run depends on its libraries")
    reason = backend_problem(backend)
    assert reason and "\n" not in reason
    assert backend_problem("onnxruntime-cpu") is None
