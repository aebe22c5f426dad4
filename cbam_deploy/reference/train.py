"""Train a host network with a CBAM variant on the reference task, on the CPU, seeded."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..models import create_model
from ..models.hosts import REFERENCE_MEAN, REFERENCE_STD
from .config import REFERENCE_ARCH, TrainConfig
from .dataset import CLASSES, IMAGE_SIZE, generate, to_tensor_batch

@dataclass
class TrainResult:
    config: TrainConfig
    heldout_top1: float
    train_seconds: float
    parameters: int
    history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["config"] = asdict(self.config)
        return out


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal/vertical flips: every class is flip-invariant."""
    flip_h = torch.rand(x.shape[0], generator=gen) < 0.5
    flip_v = torch.rand(x.shape[0], generator=gen) < 0.5
    x = torch.where(flip_h[:, None, None, None], x.flip(3), x)
    return torch.where(flip_v[:, None, None, None], x.flip(2), x)


@torch.no_grad()
def predict_logits(model: nn.Module, x: np.ndarray, batch_size: int = 250) -> np.ndarray:
    model.eval()
    return np.concatenate([model(torch.from_numpy(x[i:i + batch_size])).numpy() for i in range(0, len(x), batch_size)])


def train(config: TrainConfig, *, on_epoch: Callable[[dict[str, float]], None] | None = None) -> tuple[nn.Module, TrainResult]:
    """Train ``config.arch`` with ``config.variant`` and return the eval-mode model and its result."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    gen = torch.Generator().manual_seed(config.seed)
    h_images, h_labels = generate(config.heldout_count, split="heldout", seed=config.data_seed)
    x_held = to_tensor_batch(h_images, REFERENCE_MEAN, REFERENCE_STD)

    model = create_model(config.arch, config.variant, num_classes=len(CLASSES),
                         ratio=config.ratio, kernel_size=config.kernel_size)
    steps_per_epoch = math.ceil(config.train_count / config.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, epochs=config.epochs,
                                                   steps_per_epoch=steps_per_epoch, pct_start=0.15)
    loss_fn = nn.CrossEntropyLoss()
    history = []
    start = time.perf_counter()
    for epoch in range(config.epochs):
        # Fresh images every epoch (train-split indices epoch*N ... (epoch+1)*N): the generator is
        # cheap, and a small net memorises a fixed set of shapes before it learns them.
        images, labels = generate(config.train_count, split="train", seed=config.data_seed,
                                  start=epoch * config.train_count)
        x_train = torch.from_numpy(to_tensor_batch(images, REFERENCE_MEAN, REFERENCE_STD))
        y_train = torch.from_numpy(labels)
        model.train()
        order = torch.randperm(config.train_count, generator=gen)
        total = 0.0
        for i in range(0, config.train_count, config.batch_size):
            idx = order[i:i + config.batch_size]
            if len(idx) < 2:  # BatchNorm on pooled features needs more than one sample
                continue
            loss = loss_fn(model(_augment(x_train[idx], gen)), y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(idx)
        top1 = float((predict_logits(model, x_held).argmax(1) == h_labels).mean())
        row = {"epoch": epoch + 1, "loss": total / config.train_count, "heldout_top1": top1,
               "seconds": time.perf_counter() - start}
        history.append(row)
        if on_epoch:
            on_epoch(row)
    seconds = time.perf_counter() - start
    model.eval()
    parameters = sum(p.numel() for p in model.parameters())
    return model, TrainResult(config, history[-1]["heldout_top1"], seconds, parameters, history)


def checkpoint_payload(model: nn.Module, result: TrainResult, command: str) -> dict[str, Any]:
    """A checkpoint that ``load_checkpoint`` reads (state_dict under 'state_dict') plus our config."""
    cfg = result.config
    return {
        "state_dict": model.state_dict(),
        "cbam_deploy": {
            "arch": cfg.arch, "variant": cfg.variant or "none", "num_classes": len(CLASSES),
            "ratio": cfg.ratio, "kernel_size": cfg.kernel_size, "classes": list(CLASSES),
            "input_size": [IMAGE_SIZE, IMAGE_SIZE], "mean": list(REFERENCE_MEAN), "std": list(REFERENCE_STD),
            "heldout_top1": result.heldout_top1, "heldout_count": cfg.heldout_count,
            "train_seconds": round(result.train_seconds, 1), "parameters": result.parameters,
            "seed": cfg.seed, "data_seed": cfg.data_seed, "epochs": cfg.epochs, "command": command,
        },
    }
