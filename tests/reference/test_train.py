"""Training is seeded and reproducible, and the checkpoint it writes is one our loader reads."""

from __future__ import annotations

import torch

from cbam_deploy.cli.train import main as train_main
from cbam_deploy.models.spec import ModelSpec, build_model
from cbam_deploy.reference.train import TrainConfig, train

SMALL = dict(epochs=2, train_count=192, heldout_count=50, batch_size=32)


def test_same_seed_same_weights_and_accuracy():
    a_model, a = train(TrainConfig(variant="dual_bn", **SMALL))
    b_model, b = train(TrainConfig(variant="dual_bn", **SMALL))
    def timeless(history):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in history]

    assert timeless(a.history) == timeless(b.history)
    assert a.heldout_top1 == b.heldout_top1
    for (k, va), (_, vb) in zip(a_model.state_dict().items(), b_model.state_dict().items()):
        assert torch.equal(va, vb), k


def test_cli_writes_a_checkpoint_that_exports_load(tmp_path, capsys):
    out = tmp_path / "ckpt.pt"
    assert train_main(["--variant", "parallel", "--out", str(out), "--epochs", "1", "--train-count", "64",
                       "--batch-size", "32"]) == 0
    built = build_model(ModelSpec(arch="resnet_mini", variant="parallel", weights=str(out)))
    assert built.load_report.complete
    assert built.config["variant"] == "parallel" and built.config["classes"][0] == "circle"
    assert train_main(["--variant", "parallel", "--out", str(out), "--epochs", "1"]) == 2  # exists, no --force
    assert "already exists" in capsys.readouterr().err
