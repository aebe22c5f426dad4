"""The eager runner: validation like every runner, and safe under concurrent calls."""

from __future__ import annotations

import concurrent.futures

import numpy as np
import pytest

from cbam_deploy import create_model
from cbam_deploy.backends.base import TensorSpec
from cbam_deploy.backends.torch_eager import TorchRunner
from cbam_deploy.errors import UsageError
from tests.conftest import VARIANTS


@pytest.mark.parametrize("variant", VARIANTS)
def test_concurrent_calls_give_the_sequential_answers(variant):
    model = create_model("cbam", variant, channels=32)
    runner = TorchRunner(model, [TensorSpec("input", np.dtype(np.float32), (None, 32, None, None))], ["output"])
    rng = np.random.default_rng(1)
    feeds = [rng.standard_normal((1 + i % 3, 32, 6 + i % 2, 6), dtype=np.float32) for i in range(16)]
    with runner:
        sequential = [runner.infer({"input": x})["output"] for x in feeds]
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            parallel = list(pool.map(lambda x: runner.infer({"input": x})["output"], feeds))
    for a, b in zip(sequential, parallel):
        np.testing.assert_array_equal(a, b)


def test_fixed_dims_are_checked():
    runner = TorchRunner(create_model("cbam", "original", channels=32), [TensorSpec("input", np.dtype(np.float32), (None, 32, None, None))], ["output"])
    with runner, pytest.raises(UsageError, match=r"shape \[1, 16, 6, 6\]"):
        runner.infer({"input": np.zeros((1, 16, 6, 6), np.float32)})
