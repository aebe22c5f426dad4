"""The FP32 parity gate adapts to how well float32 can compute the model: eager float32 against
float64 on the parity inputs. A well-conditioned net keeps the table; an ill-conditioned one gets
FLOOR_MULTIPLE x its floor; a graph that computes something else still fails."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import cbam_deploy
from cbam_deploy.compare.conditioning import FloorUnavailable, float32_floor
from cbam_deploy.compare.tolerances import FLOOR_MULTIPLE, TOLERANCES, fp32_gate, fp32_tolerance
from cbam_deploy.models import create_model
from tests.conftest import VARIANTS, randomize_batchnorm

TABLE = TOLERANCES["fp32"].max_scaled_error


class Cancellation(nn.Module):
    """``(3000 x + 1e7) - 1e7``: float32 keeps ~1 unit of 1e7, so float32 itself is ~1e-4 off."""

    def forward(self, x):
        return ((x * 3e3 + 1e7) - 1e7) / 3e3


class ReorderedInExport(Cancellation):
    """The same function, computed another way in the exported graph (an offset of 3e7, not 1e7): as
    ONNX Runtime's summation order differs from eager's, both are right to float32's floor."""

    def forward(self, x):
        if torch.onnx.is_in_onnx_export():
            return ((x * 3e3 + 3e7) - 3e7) / 3e3
        return super().forward(x)


class WrongInExport(Cancellation):
    """The same model, but the exported graph scales the result by 1.01: a wrong graph."""

    def forward(self, x):
        y = super().forward(x)
        return y * 1.01 if torch.onnx.is_in_onnx_export() else y


def feeds(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [{"input": rng.standard_normal(s).astype(np.float32)} for s in shapes]


@pytest.mark.parametrize("variant", VARIANTS)
def test_well_conditioned_nets_keep_the_table_tolerance(variant):
    model = randomize_batchnorm(create_model("resnet18", variant, num_classes=10)).eval()
    floor = float32_floor(model, feeds((2, 3, 64, 64)))
    assert 0 < floor < 1e-5
    assert fp32_gate(floor) == TABLE


def test_an_ill_conditioned_model_gets_a_multiple_of_its_floor():
    floor = float32_floor(Cancellation(), feeds((1, 1, 16, 16), (2, 1, 24, 24)))
    assert 1e-5 < floor < 1e-3
    assert fp32_gate(floor) == pytest.approx(FLOOR_MULTIPLE * floor)
    assert fp32_gate(floor) > TABLE


def test_the_floor_is_the_worst_feed_and_output_and_the_module_is_untouched():
    class TwoInOut(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, a, b):
            return {"exact": self.fc(a), "cancel": (Cancellation()(b),)}

    model = TwoInOut().eval()
    b = np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32)
    f = [{"b": b, "a": np.ones((2, 4), np.float32)}]
    # input_names gives the call order: Cancellation runs on b (random: float32 loses ~1e-4 of it);
    # in the feed's own key order it would run on ones (exact in float32).
    assert float32_floor(model, f, input_names=["a", "b"]) > 1e-5
    assert float32_floor(model, f) < 1e-6
    assert model.fc.weight.dtype == torch.float32
    assert float32_floor(model, []) == 0.0


def test_a_model_that_cannot_run_in_float64_says_so():
    class PinsFloat32(nn.Module):
        def __init__(self):
            super().__init__()
            self.matrix = torch.eye(4)  # a plain attribute: .double() does not convert it

        def forward(self, x):
            return x @ self.matrix

    with pytest.raises(FloorUnavailable, match="cannot run in float64"):
        float32_floor(PinsFloat32(), [{"x": np.ones((2, 4), np.float32)}])


def test_gate_helper_edges():
    assert fp32_gate(None) == TABLE and fp32_gate(math.nan) == TABLE and fp32_gate(0.0) == TABLE
    assert fp32_gate(1e-3, table=1e-2) == pytest.approx(max(1e-2, FLOOR_MULTIPLE * 1e-3))
    with pytest.raises(ValueError, match="never negative"):
        fp32_gate(-1.0)


def test_cosine_bound_follows_the_gate():
    assert fp32_tolerance(1e-8) == TOLERANCES["fp32"]  # well conditioned: the table, both bounds
    loose = fp32_tolerance(1e-2)
    assert loose.max_scaled_error == pytest.approx(FLOOR_MULTIPLE * 1e-2)
    assert loose.min_cosine == pytest.approx(1 - (FLOOR_MULTIPLE * 1e-2) ** 2 / 2)
    assert TOLERANCES["fp32"].min_cosine > loose.min_cosine > 0.99


def test_export_passes_an_ill_conditioned_model_and_fails_a_wrong_graph(tmp_path):
    shape = [(1, 1, 16, 16)]
    report = cbam_deploy.export(ReorderedInExport().eval(), shape, out=tmp_path, name="reordered", dynamic="all")
    worst = report.parity.worst().scaled_error
    assert report.passed and TABLE < worst < report.parity.tolerance.max_scaled_error  # the table alone would fail it
    with pytest.raises(cbam_deploy.CheckFailedError, match="parity against eager failed.*float32 floor"):
        cbam_deploy.export(WrongInExport().eval(), shape, out=tmp_path, name="wrong", dynamic="all")
    assert not (tmp_path / "wrong").exists()


@pytest.mark.slow
def test_random_parallel_resnet50_passes_with_its_floor(tmp_path):
    torch.manual_seed(0)
    model = create_model("resnet50", "parallel").eval()
    floor = float32_floor(model, feeds((1, 3, 224, 224), (3, 3, 224, 224)))
    assert floor > TABLE / FLOOR_MULTIPLE  # float32 itself cannot meet the table on this net
    report = cbam_deploy.export(model, [(1, 3, 224, 224)], out=tmp_path, name="r50")
    assert report.passed
