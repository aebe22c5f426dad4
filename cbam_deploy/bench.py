"""Latency measurement for side-by-side comparisons on a noisy machine.

Every configuration is timed interleaved, round-robin, in one process (one call of each per round),
so load from elsewhere hits all of them alike; report medians and ratios, not single runs.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np


@dataclass
class Timing:
    label: str
    batch: int
    seconds: list[float]

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.seconds, q))

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def throughput(self) -> float:
        """Images per second at the median latency."""
        return self.batch / self.p50

    def to_dict(self) -> dict[str, float | int | str]:
        return {"label": self.label, "batch": self.batch, "runs": len(self.seconds),
                "p50_ms": 1000 * self.p50, "p90_ms": 1000 * self.percentile(90), "p99_ms": 1000 * self.percentile(99),
                "throughput_per_s": self.throughput}


def time_interleaved(calls: Mapping[str, Callable[[], object]], *, batch: int, warmup: int = 10, runs: int = 50,
                     seconds: float | None = None) -> dict[str, Timing]:
    """Warm up each call, then run rounds (each call once per round) until ``runs`` rounds are done,
    or, with ``seconds``, until that time budget is spent (at least 5 rounds)."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    samples: dict[str, list[float]] = {label: [] for label in calls}
    start = time.perf_counter()
    rounds = 0
    while (rounds < runs) if seconds is None else (rounds < 5 or time.perf_counter() - start < seconds):
        for label, call in calls.items():
            t0 = time.perf_counter()
            call()
            samples[label].append(time.perf_counter() - t0)
        rounds += 1
    return {label: Timing(label, batch, s) for label, s in samples.items()}


def plot_png(rows: list[dict[str, float | int | str]], title: str) -> bytes:
    """A horizontal bar chart of median latency per configuration (PIL only, no matplotlib)."""
    from PIL import Image, ImageDraw

    width, bar_h, left = 760, 18, 300
    height = 40 + len(rows) * (bar_h + 6)
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    draw.text((8, 8), title, fill="black")
    longest = max(float(r["p50_ms"]) for r in rows) or 1.0
    for i, r in enumerate(rows):
        y = 32 + i * (bar_h + 6)
        draw.text((8, y + 3), f"{r['label']} (batch {r['batch']})", fill="black")
        w = int((width - left - 110) * float(r["p50_ms"]) / longest)
        draw.rectangle([left, y, left + max(w, 1), y + bar_h], fill=(60, 120, 200))
        draw.text((left + w + 6, y + 3), f"{float(r['p50_ms']):.2f} ms", fill="black")
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()
