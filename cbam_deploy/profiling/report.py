"""The profile report: per-node times rolled up by the PyTorch module tree, per attention block.

Node times come in already put in terms of the unprofiled latency (:func:`.events.calibrate`);
``attributed_share`` is the part of that latency the nodes account for (the rest is the session's
own time before the first and after the last kernel).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .attribution import RULE, Attribution

CATEGORIES = ("convolutions", "channel attention", "spatial attention", "gating", "attention", "other ops",
              "runtime overhead")
_PART_CATEGORY = {"channel": "channel attention", "spatial": "spatial attention", "gating": "gating",
                  "attention": "attention", "conv": "convolutions", "other": "other ops"}


@dataclass
class BlockTime:
    """One attention block: ms and share of end-to-end latency, split into its parts."""

    block: str
    channel_ms: float = 0.0
    spatial_ms: float = 0.0
    gating_ms: float = 0.0
    other_ms: float = 0.0  # attention of unknown kind (gate shape not inferred)
    share: float = 0.0
    parts: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ms(self) -> float:
        return self.channel_ms + self.spatial_ms + self.gating_ms + self.other_ms

    def to_dict(self) -> dict[str, Any]:
        return {"block": self.block, "ms": self.ms, "share": self.share, "channel_ms": self.channel_ms,
                "spatial_ms": self.spatial_ms, "gating_ms": self.gating_ms, "other_ms": self.other_ms,
                "parts": self.parts}


@dataclass
class ProfileReport:
    """Where one configuration's latency goes, by module, by attention block and by stage."""

    model: str
    backend: str
    e2e_ms: float
    profiled_ms: float
    runs: int
    nodes: list[dict[str, Any]]
    modules: list[dict[str, Any]]
    blocks: list[BlockTime]
    stages: list[dict[str, Any]]
    rule: str = RULE
    notes: list[str] = field(default_factory=list)
    tips: list[str] = field(default_factory=list)
    ablation: dict[str, Any] | None = None

    @property
    def attributed_ms(self) -> float:
        return sum(n["ms"] for n in self.nodes)

    @property
    def attributed_share(self) -> float:
        # <= 1 by construction (node shares of a run sum to 1, times the covered share); min() absorbs rounding
        return min(1.0, self.attributed_ms / self.e2e_ms) if self.e2e_ms else 0.0

    @property
    def attention_ms(self) -> float:
        return sum(b.ms for b in self.blocks)

    @property
    def attention_share(self) -> float:
        return self.attention_ms / self.e2e_ms if self.e2e_ms else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "backend": self.backend, "e2e_ms": self.e2e_ms, "profiled_ms": self.profiled_ms,
                "runs": self.runs, "attributed_ms": self.attributed_ms, "attributed_share": self.attributed_share,
                "attention_ms": self.attention_ms, "attention_share": self.attention_share, "rule": self.rule,
                "modules": self.modules, "blocks": [b.to_dict() for b in self.blocks], "stages": self.stages,
                "tips": self.tips, "notes": self.notes, "ablation": self.ablation, "nodes": self.nodes}

    def to_markdown(self) -> str:
        from .render import markdown

        return markdown(self)

    def rich_table(self):
        from .render import renderable

        return renderable(self)


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def build_report(model: str, backend: str, node_ms: dict[str, float], ops: dict[str, str],
                 attributions: dict[str, Attribution], e2e_ms: float, profiled_ms: float, runs: int,
                 block_parts: dict[str, dict[str, list[str]]], block_order: list[str]) -> ProfileReport:
    """Roll node times (ms, already in terms of the unprofiled latency) up by module, block and stage."""
    nodes, totals, stages = [], {}, {}
    blocks = {b: BlockTime(b, parts=block_parts.get(b, {})) for b in block_order}
    for name, raw in node_ms.items():
        a = attributions.get(name) or Attribution("", "other", rule="runtime")
        ms = raw
        nodes.append({"node": name, "op": ops.get(name, "?"), "module": a.module, "part": a.part, "block": a.block,
                      "rule": a.rule, "ms": ms})
        for m in _ancestors(a.module) if a.module else ["(no module)"]:
            totals[m] = totals.get(m, 0.0) + ms
        if a.is_attention:
            block = blocks.setdefault(a.block, BlockTime(a.block, parts=block_parts.get(a.block, {})))
            field_name = {"channel": "channel_ms", "spatial": "spatial_ms", "gating": "gating_ms"}.get(a.part, "other_ms")
            setattr(block, field_name, getattr(block, field_name) + ms)
        category = "runtime overhead" if a.conversion and not a.is_attention else _PART_CATEGORY.get(a.part, "other ops")
        stage = a.module.split(".")[0] if a.module else "(no module)"
        row = stages.setdefault(stage, {c: 0.0 for c in CATEGORIES})
        row[category] += ms
    for b in blocks.values():
        b.share = b.ms / e2e_ms if e2e_ms else 0.0
    modules = [{"module": m, "ms": ms, "share": ms / e2e_ms if e2e_ms else 0.0} for m, ms in totals.items()]
    stage_rows = [{"stage": s, **{c: v for c, v in row.items()}, "ms": sum(row.values())} for s, row in stages.items()]
    report = ProfileReport(model, backend, e2e_ms, profiled_ms, runs, nodes, modules, list(blocks.values()), stage_rows)
    return report


def ablation_summary(report: ProfileReport, samples: dict[str, list[float]]) -> dict[str, Any]:
    """The attributed attention share next to the measured one (``1 - t_bypassed / t_full``), overall and
    per stage; ``samples``: seconds per run by label, ``e2e`` being the full model."""
    import statistics

    full = statistics.median(samples["e2e"])
    out: dict[str, Any] = {"full_ms": 1000 * full, "rounds": len(samples["e2e"]), "stages": {},
                           "timed_ms": {k: 1000 * statistics.median(v) for k, v in samples.items() if k != "profiled"}}
    if "no attention" not in samples:
        out["note"] = "no attention block to bypass"
        return out
    without = statistics.median(samples["no attention"])
    out.update({"without_ms": 1000 * without, "measured_share": 1 - without / full,
                "attributed_share": report.attention_share,
                "difference_points": 100 * (report.attention_share - (1 - without / full))})
    for label, times in samples.items():
        if label.startswith("no attention in "):
            stage = label[len("no attention in "):]
            attributed = sum(b.ms for b in report.blocks if b.block.split(".")[0] == stage) / report.e2e_ms
            out["stages"][stage] = {"measured_share": 1 - statistics.median(times) / full,
                                    "attributed_share": attributed}
    shares = [out["measured_share"], *(s["measured_share"] for s in out["stages"].values())]
    if min(shares) < 0:
        out["note"] = ("a bypassed graph timed slower than the full one: the machine's noise exceeds what is "
                       "measured; rerun with more --runs on a quieter machine (fewer sessions: --ablation network)")
        report.notes.append("ablation: " + out["note"])
    return out
