"""What to try, drawn from one profile's numbers only (never a generic tip)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .report import ProfileReport


def what_to_try(report: "ProfileReport") -> list[str]:
    """Statements backed by this run's figures: the costliest stage's attention, the biggest part,
    un-fused epilogues and conversions, and kept-float boundaries (Q/DQ, casts) where they cost."""
    tips: list[str] = []
    if not report.blocks or not report.e2e_ms:
        return tips
    by_stage: dict[str, float] = {}
    for b in report.blocks:
        by_stage[b.block.split(".")[0]] = by_stage.get(b.block.split(".")[0], 0.0) + b.ms
    stage, ms = max(by_stage.items(), key=lambda kv: kv[1])
    count = sum(1 for b in report.blocks if b.block.split(".")[0] == stage)
    per_block = {s: ms_ / sum(1 for b in report.blocks if b.block.split(".")[0] == s) for s, ms_ in by_stage.items()}
    tips.append(f"attention in {stage} costs most: {ms:.2f} ms ({100 * ms / report.e2e_ms:.1f} % of latency, "
                f"{count} blocks, {per_block[stage]:.2f} ms each); dropping or thinning attention there saves the "
                "most (weigh it against the accuracy it buys there)")
    measured = (report.ablation or {}).get("stages") or {}
    if measured and all(v["measured_share"] > 0 for v in measured.values()):  # noise, not a finding, otherwise
        top, share = max(measured.items(), key=lambda kv: kv[1]["measured_share"])
        tips.append(f"measured by bypassing one stage's attention at a time: {top}'s costs "
                    f"{100 * share['measured_share']:.1f} % of latency (attributed {100 * share['attributed_share']:.1f} %)")
    parts = {"channel attention": sum(b.channel_ms for b in report.blocks),
             "spatial attention": sum(b.spatial_ms for b in report.blocks),
             "gating": sum(b.gating_ms for b in report.blocks)}
    part, part_ms = max(parts.items(), key=lambda kv: kv[1])
    tips.append(f"{part} is the largest attention part: {part_ms:.2f} ms of {report.attention_ms:.2f} ms")
    caused = [n for n in report.nodes if n["block"] and n["rule"] in ("unfused epilogue", "conversion")]
    caused_ms = sum(n["ms"] for n in caused)
    if caused_ms > 0.05 * report.attention_ms:
        reorders = sum(n["ms"] for n in caused if n["op"].startswith("Reorder"))
        epilogue = sum(n["ms"] for n in caused if n["rule"] == "unfused epilogue")
        other = caused_ms - reorders - epilogue
        tips.append(f"{caused_ms:.2f} ms ({100 * caused_ms / report.attention_ms:.0f} %) of the attention's cost is "
                    f"not its own math: {reorders:.2f} ms of layout reorders, {epilogue:.2f} ms of residual Add/ReLU "
                    "the runtime no longer fuses into the convolution"
                    + (f", {other:.2f} ms of other conversions (Q/DQ, casts, copies)" if other > 0.005 else "")
                    + "; a runtime or kernel that applies the gate inside the convolution's epilogue avoids them")
    qdq = [n for n in report.nodes if n["op"] in ("QuantizeLinear", "DequantizeLinear", "Cast")]
    total = sum(n["ms"] for n in qdq)
    if total >= 0.01 * report.e2e_ms:
        worst: dict[str, float] = {}
        for n in qdq:
            if n["block"]:
                worst[n["block"]] = worst.get(n["block"], 0.0) + n["ms"]
        text = f"precision conversions (Q/DQ, Cast) take {total:.2f} ms ({100 * total / report.e2e_ms:.1f} % of latency)"
        if worst:
            where = max(worst, key=worst.get)
            text += (f", {sum(worst.values()):.2f} ms of it at kept-float attention boundaries (most at {where}: "
                     f"{worst[where]:.2f} ms); quantizing those regions or merging them removes the conversions")
        tips.append(text)
    return tips
