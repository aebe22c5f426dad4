"""Outputs of any structure become named ONNX outputs: dict keys, positions, nested paths; renaming
with output_names; a non-tensor leaf is one clear error."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from cbam_deploy import export
from cbam_deploy.errors import UsageError
from cbam_deploy.onnx_export.outputs import flatten_outputs, output_names


class Detector(nn.Module):
    """A head that returns a dict of tensors, and nests of them, like a detector outside export mode."""

    def __init__(self, structure: str = "dict"):
        super().__init__()
        self.structure = structure
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.box = nn.Conv2d(8, 4, 1)
        self.cls = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        boxes, scores = self.box(y), self.cls(y).sigmoid()
        if self.structure == "dict":
            return {"boxes": boxes, "scores": scores}
        if self.structure == "nested":
            return y, [boxes, (scores, scores * 2)]
        return boxes, {"scores": scores, "count": 3}  # a non-tensor leaf


def _paths(value) -> list[tuple]:
    return [p for p, _ in flatten_outputs(value)]


def test_names_follow_the_structure():
    t = torch.zeros(1)
    assert output_names(_paths(t), classifier=False) == ["output"]
    assert output_names(_paths(t), classifier=True) == ["logits"]
    assert output_names(_paths((t, t)), classifier=True) == ["output_0", "output_1"]
    assert output_names(_paths({"boxes": t, "scores": t}), classifier=False) == ["boxes", "scores"]
    nested = (t, [t, (t, {"a": t})])
    assert output_names(_paths(nested), classifier=False) == ["output_0", "output_1.0", "output_1.1.0",
                                                              "output_1.1.1.a"]
    assert output_names(_paths({"head": {"scores": [t, t]}}), classifier=False) == ["head.scores.0", "head.scores.1"]


def test_renaming_needs_one_unique_name_per_output():
    paths = _paths({"boxes": torch.zeros(1), "scores": torch.zeros(1)})
    assert output_names(paths, classifier=False, given=["b", "s"]) == ["b", "s"]
    with pytest.raises(UsageError, match=r"1 output names for a model with 2 outputs \(boxes, scores\)"):
        output_names(paths, classifier=False, given=["b"])
    with pytest.raises(UsageError, match="repeated: x"):
        output_names(paths, classifier=False, given=["x", "x"])


def test_non_tensor_leaf_is_one_clear_error(tmp_path):
    with pytest.raises(UsageError, match=r"the model returns int at output 'output_1.count'; ONNX outputs must be tensors"):
        export(Detector("bad").eval(), (torch.randn(1, 3, 16, 16),), out=tmp_path, name="bad")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("structure, names, rename", [
    ("dict", ["boxes", "scores"], None),
    ("nested", ["output_0", "output_1.0", "output_1.1.0", "output_1.1.1"], None),
    ("dict", ["b", "s"], ["b", "s"]),
])
def test_structured_outputs_export_as_named_outputs_matching_eager(tmp_path, structure, names, rename):
    model = Detector(structure).eval()
    report = export(model, (torch.randn(1, 3, 16, 16),), out=tmp_path, name="det", dynamic="all", output_names=rename)
    assert report.passed and report.metadata["output_names"] == names
    session = ort.InferenceSession(str(report.onnx_path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == names
    x = np.random.default_rng(0).standard_normal((2, 3, 24, 40)).astype(np.float32)  # untraced batch and size
    got = session.run(None, {"input": x})
    with torch.no_grad():
        want = [t.numpy() for _, t in flatten_outputs(model(torch.from_numpy(x)))]
    for g, w in zip(got, want):
        assert g.shape == w.shape and np.abs(g - w).max() <= 1e-5 * np.abs(w).max()


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_exporting_leaves_the_model_in_eval_mode_with_its_statistics(exporter, tmp_path):
    from cbam_deploy.onnx_export import export_to_onnx
    from cbam_deploy.onnx_export.outputs import flatten_module

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        wrapped, names = flatten_module(model, model(x))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_to_onnx(wrapped, (x,), input_names=["input"], output_names=names, dynamic_axes=[{0: "batch"}],
                   exporter=exporter)
    with torch.no_grad():
        wrapped(x)
    assert not model.training and not any(m.training for m in model.modules())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
