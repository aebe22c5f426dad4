"""Checkpoint loading: formats, DataParallel prefix, strict/non-strict reports, bad files."""

from __future__ import annotations

import pytest
import torch

from cbam_deploy import create_model, load_checkpoint
from cbam_deploy.errors import CheckpointError
from tests.conftest import VARIANTS, randomize_batchnorm


def _model(variant="original"):
    return randomize_batchnorm(create_model("resnet_mini", variant, num_classes=5), seed=3).eval()


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("wrap", ["bare", "state_dict", "model", "dataparallel"])
def test_formats_load_strictly_and_reproduce_outputs(variant, wrap, tmp_path):
    src = _model(variant)
    sd = src.state_dict()
    payload = {"bare": sd, "state_dict": {"state_dict": sd, "epoch": 3}, "model": {"model": sd},
               "dataparallel": {f"module.{k}": v for k, v in sd.items()}}[wrap]
    torch.save(payload, tmp_path / "ckpt.pt")
    dst = create_model("resnet_mini", variant, num_classes=5)
    report = load_checkpoint(dst, tmp_path / "ckpt.pt")
    assert report.complete and report.loaded == len(sd)
    assert report.stripped_prefix == ("module." if wrap == "dataparallel" else None)
    dst.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(dst(x), src(x), rtol=0, atol=1e-6)


def test_strict_mismatch_is_one_readable_line(tmp_path):
    torch.save(_model("original").state_dict(), tmp_path / "orig.pt")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(create_model("resnet_mini", "dual_bn", num_classes=5), tmp_path / "orig.pt")
    msg = str(err.value)
    assert "\n" not in msg
    assert "missing (layer1.0.cbam.channelattention.fc_avg.0.weight" in msg
    assert "unexpected (layer1.0.cbam.channelattention.fc.0.weight" in msg


def test_shape_mismatch_reported_with_both_shapes(tmp_path):
    torch.save(_model("original").state_dict(), tmp_path / "five.pt")
    with pytest.raises(CheckpointError, match=r"shape-mismatched \(fc.weight: checkpoint \[5, 128\] vs model \[10, 128\]"):
        load_checkpoint(create_model("resnet_mini", "original", num_classes=10), tmp_path / "five.pt")


def test_non_strict_backbone_only_reports_uninitialised_attention(tmp_path):
    plain = create_model("resnet18", None)
    torch.save(plain.state_dict(), tmp_path / "backbone.pt")
    model = create_model("resnet18", "parallel")
    report = load_checkpoint(model, tmp_path / "backbone.pt", strict=False)
    assert report.loaded == len(plain.state_dict())
    assert report.missing and all(".cbam." in k for k in report.missing)
    assert not report.unexpected and not report.mismatched
    torch.testing.assert_close(model.layer1[0].conv1.weight, plain.layer1[0].conv1.weight)


@pytest.mark.parametrize("content, message", [
    (b"definitely not a checkpoint", "not a PyTorch checkpoint, or truncated"),
    (None, "does not exist"),
])
def test_unreadable_files_give_one_line(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as err:
        load_checkpoint(create_model("resnet_mini", "original", num_classes=5), path)
    assert "\n" not in str(err.value)


def test_truncated_checkpoint_gives_one_line(tmp_path):
    torch.save(_model().state_dict(), tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint, or truncated"):
        load_checkpoint(create_model("resnet_mini", "original", num_classes=5), tmp_path / "cut.pt")


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_code_is_refused_not_executed(tmp_path, capsys):
    torch.save({"state_dict": {"w": torch.zeros(1)}, "evil": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="could run code"):
        load_checkpoint(create_model("resnet_mini", "original", num_classes=5), tmp_path / "evil.pt")
    assert "this must never run" not in capsys.readouterr().out


def test_dict_without_tensors_is_not_a_checkpoint(tmp_path):
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "meta.pt")
    with pytest.raises(CheckpointError, match="holds no state_dict"):
        load_checkpoint(create_model("resnet_mini", "original", num_classes=5), tmp_path / "meta.pt")
