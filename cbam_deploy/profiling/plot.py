"""``--plot OUT.png``: where the time goes, per stage and per attention block (matplotlib, extra ``plot``)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from ..errors import MissingDependencyError

if TYPE_CHECKING:
    from .report import ProfileReport

COLORS = {"convolutions": "#b8c2cc", "other ops": "#dde3e8", "channel attention": "#3b7dd8",
          "spatial attention": "#f28e2b", "gating": "#d64545", "attention": "#8c6bb1", "runtime overhead": "#4d4d4d"}
ORDER = ("convolutions", "other ops", "runtime overhead", "channel attention", "spatial attention", "gating", "attention")
ATTENTION = ("channel attention", "spatial attention", "gating", "attention")


def require_matplotlib() -> None:
    """Fail before any work when ``--plot`` cannot be honoured."""
    _pyplot()


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError("--plot needs matplotlib: pip install 'cbam-deploy[plot]'") from None
    return plt


def _stages(report: "ProfileReport") -> list[dict]:
    """Stages holding attention stay; top-level modules before them merge into 'stem', after into 'head'."""
    rows = report.stages
    with_attention = [i for i, s in enumerate(rows) if any(s[c] > 0 for c in ATTENTION)]
    if not with_attention:
        return rows
    first, last = with_attention[0], with_attention[-1]
    merged: list[dict] = []

    def add(label: str, group: list[dict]) -> None:
        if group:
            merged.append({"stage": label, **{c: sum(s[c] for s in group) for c in ORDER}})

    add("stem", rows[:first])
    merged += rows[first:last + 1]
    add("head", rows[last + 1:])
    return merged


def plot_png(report: "ProfileReport") -> bytes:
    """Two panels: stacked ms per stage (convolutions, attention parts, runtime overhead), and the
    attention of each block split into channel, spatial and gating."""
    plt = _pyplot()
    stages = _stages(report)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [1, 1.6]})
    x = range(len(stages))
    bottom = [0.0] * len(stages)
    for cat in ORDER:
        values = [s[cat] for s in stages]
        if any(v > 0 for v in values):
            left.bar(x, values, bottom=bottom, color=COLORS[cat], label=cat, width=0.7, edgecolor="white", linewidth=0.5)
            bottom = [b + v for b, v in zip(bottom, values)]
    for i, s in enumerate(stages):
        att = sum(s[c] for c in ATTENTION)
        if att > 0:
            left.annotate(f"{100 * att / bottom[i]:.0f} %", (i, bottom[i]), ha="center", va="bottom",
                          fontsize=9, color=COLORS["gating"], fontweight="bold", xytext=(0, 3), textcoords="offset points")
    left.set_xticks(list(x), [s["stage"] for s in stages])
    left.set_ylabel("ms (scaled to the unprofiled latency)")
    left.set_title("per stage (red figure: attention's share of the stage)", fontsize=10, loc="left")
    left.set_ylim(0, max(bottom or [1]) * 1.12)
    _blocks_panel(right, report)
    for ax in (left, right):
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="y", color="#eeeeee")
        ax.set_axisbelow(True)
    title = f"{report.model} on {report.backend}: {report.e2e_ms:.1f} ms, attention {100 * report.attention_share:.1f} %"
    if report.ablation and "measured_share" in report.ablation:
        title += f" (ablation measured {100 * report.ablation['measured_share']:.1f} %)"
    fig.suptitle(title, fontsize=13, x=0.01, ha="left")
    handles, labels = {}, {}
    for ax in (left, right):
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=len(handles), frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def _blocks_panel(ax, report: "ProfileReport") -> None:
    blocks = report.blocks
    if not blocks:
        ax.text(0.5, 0.5, "no attention block found", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        return
    x = range(len(blocks))
    bottom = [0.0] * len(blocks)
    for cat, attr in (("channel attention", "channel_ms"), ("spatial attention", "spatial_ms"), ("gating", "gating_ms"),
                      ("attention", "other_ms")):
        values = [getattr(b, attr) for b in blocks]
        if any(v > 0 for v in values):
            ax.bar(x, values, bottom=bottom, color=COLORS[cat], label=cat, width=0.75, edgecolor="white", linewidth=0.5)
            bottom = [b + v for b, v in zip(bottom, values)]
    labels = [b.block.rsplit(".", 1)[0] if b.block.count(".") >= 2 else b.block for b in blocks]
    ax.set_xticks(list(x), labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("ms")
    ax.set_title("attention per block (gating includes the reorders and un-fused Add/ReLU it causes)",
                 fontsize=10, loc="left")
