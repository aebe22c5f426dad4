"""Per-request isolation inside one Triton batch, without a server: each request is checked on
its own, a malformed one gets its own one-line rejection, the good ones beside it get exactly the
answers they would get alone, and a model failure fails only the run it happened in."""

from __future__ import annotations

import numpy as np
import pytest

from cbam_deploy.serving.executor import BatchExecutor, Failed, Rejected, specs_from_signature
from cbam_deploy.serving.requests import InputSpec, check_request

from ..conftest import VARIANTS

SPECS = [InputSpec("input", np.dtype(np.float32), (None, 3, 8, 8))]


def good(rows: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    return {"input": np.random.default_rng(seed).standard_normal((rows, 3, 8, 8)).astype(np.float32)}


def with_nan(at: tuple[int, ...] = (0, 0, 0, 0), count: int = 1) -> dict[str, np.ndarray]:
    feed = good()
    flat = np.ravel_multi_index(at, feed["input"].shape)
    feed["input"].flat[flat:flat + count] = np.nan
    return feed


@pytest.mark.parametrize("feed, message", [
    (with_nan(), "input 'input': 1 NaN value at [0, 0, 0, 0]"),
    (with_nan((0, 1, 2, 3), count=3), "input 'input': 3 NaN values, first at [0, 1, 2, 3]"),
    ({"input": np.full((1, 3, 8, 8), np.inf, np.float32)}, "input 'input': 192 infinite values, first at [0, 0, 0, 0]"),
    ({"input": good()["input"][:, :, :4]}, "input 'input': shape [1, 3, 4, 8], the model takes [?, 3, 8, 8]"),
    ({"input": good()["input"].astype(np.float64)}, "input 'input': dtype float64, the model takes float32"),
    ({"image": good()["input"]}, "unexpected input 'image'; the model takes 'input'"),
    ({}, "missing input 'input'"),
    (good(rows=9), "input 'input': batch 9 is over the maximum 8"),
    (good(rows=0), "input 'input': an empty batch (0 rows)"),
])
def test_each_malformed_request_is_named_in_one_line(feed, message):
    assert check_request(feed, SPECS, max_batch_size=8) == message
    assert "\n" not in message


def test_zero_is_a_value_and_a_good_request_passes():
    assert check_request({"input": np.zeros((1, 3, 8, 8), np.float32)}, SPECS, max_batch_size=8) is None
    assert check_request(good(rows=8), SPECS, max_batch_size=8) is None


class DoublingRunner:
    """x -> 2x per row; records each run's batch; fails on demand."""

    def __init__(self) -> None:
        self.runs: list[int] = []
        self.fail = False

    def infer(self, feed):
        self.runs.append(len(feed["input"]))
        if self.fail:
            raise RuntimeError("device lost\nwith a second line")
        return {"out": feed["input"] * 2}

    def __exit__(self, *exc):
        pass


def test_a_nan_request_does_not_touch_the_good_ones_in_its_batch():
    lines: list[str] = []
    runner = DoublingRunner()
    executor = BatchExecutor(runner, SPECS, max_batch_size=8, log=lines.append)
    a, b = good(rows=2, seed=1), good(rows=3, seed=2)
    answers = executor.execute([a, with_nan(), b])
    assert answers[1] == Rejected("input 'input': 1 NaN value at [0, 0, 0, 0]")
    np.testing.assert_array_equal(answers[0]["out"], a["input"] * 2)
    np.testing.assert_array_equal(answers[2]["out"], b["input"] * 2)
    assert runner.runs == [5]  # the good ones still ran together, without the rejected one
    assert lines == ["rejected a request: input 'input': 1 NaN value at [0, 0, 0, 0]"]


def test_a_model_failure_fails_its_run_only_in_one_line():
    lines: list[str] = []
    runner = DoublingRunner()
    executor = BatchExecutor(runner, SPECS, max_batch_size=8, log=lines.append)
    runner.fail = True
    answers = executor.execute([good(), good(seed=3)])
    assert answers == [Failed("the model failed: RuntimeError: device lost with a second line")] * 2
    assert lines == ["the model failed: RuntimeError: device lost with a second line (a run of 2 requests)"]
    runner.fail = False
    assert isinstance(executor.execute([good()])[0], dict)  # and it keeps serving


def test_different_sizes_on_dynamic_axes_run_apart():
    specs = [InputSpec("input", np.dtype(np.float32), (None, 3, None, None))]
    runner = DoublingRunner()
    small = {"input": np.ones((1, 3, 4, 4), np.float32)}
    answers = BatchExecutor(runner, specs, max_batch_size=8).execute([good(), small, good(seed=5)])
    assert sorted(runner.runs) == [1, 2] and answers[1]["out"].shape == (1, 3, 4, 4)


@pytest.mark.parametrize("variant", VARIANTS)
def test_batched_answers_equal_lone_answers_for_every_variant(exported_host, variant):
    from cbam_deploy.backends.onnxruntime import OnnxRuntimeRunner
    from cbam_deploy.model_dir import ExportedModel

    exported = exported_host("cbam", variant)
    model = ExportedModel.open(exported.onnx_path)
    specs = specs_from_signature(model.signature)
    shape = exported.shape[1:]
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, *shape)).astype(np.float32) for n in (1, 2))
    bad = a.copy()
    bad[0, 0, 0, 0] = np.nan
    with OnnxRuntimeRunner(exported.onnx_path, threads=1, spinning=False, allow_nonfinite=True) as runner:
        executor = BatchExecutor(runner, specs, max_batch_size=8)
        together = executor.execute([{specs[0].name: a}, {specs[0].name: bad}, {specs[0].name: b}])
        alone = [executor.execute([{specs[0].name: x}])[0] for x in (a, b)]
    assert together[1] == Rejected(f"input {specs[0].name!r}: 1 NaN value at [0, 0, 0, 0]")
    for got, want in zip((together[0], together[2]), alone):
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5)


def test_serve_backends_are_the_deploy_backends():
    from cbam_deploy.backends import DEPLOY_BACKENDS
    from cbam_deploy.serving.options import SERVE_BACKENDS

    assert SERVE_BACKENDS == DEPLOY_BACKENDS
