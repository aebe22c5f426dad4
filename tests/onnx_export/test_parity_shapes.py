"""Parity shapes the model accepts: eager runs at every planned case before the export; the untraced
resolution is one the network's stride allows; a shape the model itself rejects is its limit, in one line."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cbam_deploy import export
from cbam_deploy.cli.export import main as export_main
from cbam_deploy.compare.cases import choose_resolution, untraced_candidates
from cbam_deploy.errors import UsageError


class Stride32(nn.Module):
    """Adds a 1/32-resolution path back onto the input: only sizes that are multiples of 32 work
    (a detector's P5 head with an upsampling FPN behaves the same)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        coarse = F.avg_pool2d(self.conv(x), 32)
        return x + F.interpolate(coarse, scale_factor=32.0, mode="nearest")


def test_candidates_round_up_to_strides_and_never_repeat_the_traced_size():
    assert untraced_candidates((64, 64))[0] == (96, 96)  # 1.25x = 80 is not a multiple of 32
    assert untraced_candidates((320, 320))[0] == (416, 416)
    assert all(c != (64, 64) for c in untraced_candidates((64, 64)))


def test_the_first_candidate_the_model_accepts_is_chosen():
    tried = []

    def accepts(case):
        tried.append(case[1][0][-2:])
        return None if case[1][0][-1] % 64 == 0 else "size mismatch"

    label, shapes = choose_resolution([(1, 3, 64, 64)], [{0: "batch", 2: "h", 3: "w"}], accepts)
    assert shapes == [(2, 3, 128, 128)] and tried[0] == (96, 96) and "not traced" in label


def test_stride_32_network_exports_with_dynamic_hw_at_an_accepted_resolution(tmp_path):
    # 1.25 x 64 = 80 is not a multiple of 32: eager itself fails there.
    with pytest.raises(RuntimeError):
        Stride32()(torch.randn(1, 3, 80, 80))
    report = export(Stride32().eval(), (torch.randn(1, 3, 64, 64),), out=tmp_path, name="s32", dynamic="all")
    untraced = [c for c in report.parity.cases if "not traced" in c.label]
    assert report.passed and len(untraced) == 1
    assert all(d % 32 == 0 for d in untraced[0].input_shapes["input"][-2:])


def test_parity_shape_the_model_rejects_is_its_limit_in_one_line(tmp_path, capsys):
    with pytest.raises(UsageError, match=r"the model itself fails at --parity-shape 80x80 \(its limit, in eager "
                                         r"PyTorch\): .*RuntimeError"):
        export(Stride32().eval(), (torch.randn(1, 3, 64, 64),), out=tmp_path, name="s32", dynamic="all",
               parity_shape=(80, 80))
    assert list(tmp_path.iterdir()) == []


def test_parity_shape_option_is_used(tmp_path, capsys):
    code = export_main(["--arch", "cbam", "--variant", "original", "--input-shape", "1x32x8x8", "--dynamic", "all",
                        "--parity-shape", "24x40", "--out", str(tmp_path), "--json"])
    assert code == 0
    labels = [c["label"] for c in json.loads(capsys.readouterr().out)["parity"]["cases"]]
    assert "batch 2 @ 24x40 (not traced)" in labels


def test_a_traced_case_the_model_rejects_is_reported_before_exporting(tmp_path):
    class BatchOfOne(nn.Module):
        def forward(self, x):
            if x.shape[0] != 1:
                raise ValueError("this model takes one image at a time")
            return x * 2

    with pytest.raises(UsageError, match=r"fails at input shape 3x3x8x8 \(batch 3 @ 8x8\): .*takes one image at a time"):
        export(BatchOfOne().eval(), (torch.randn(1, 3, 8, 8),), out=tmp_path, name="b1")
