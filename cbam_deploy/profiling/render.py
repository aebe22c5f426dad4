"""The profile as rich tables (terminal) and Markdown (reports)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .report import ProfileReport

STAGE_COLUMNS = ("convolutions", "channel attention", "spatial attention", "gating", "attention", "other ops",
                 "runtime overhead")


def headline(r: "ProfileReport") -> str:
    return (f"{r.model} on {r.backend}: {r.e2e_ms:.2f} ms end to end (median of {r.runs}, unprofiled); "
            f"the profile attributes {100 * r.attributed_share:.1f} % of it; attention "
            f"{r.attention_ms:.2f} ms = {100 * r.attention_share:.1f} % of the latency")


def ablation_line(r: "ProfileReport") -> str | None:
    a = r.ablation
    if not a or "measured_share" not in a:
        return None
    text = (f"ablation (attention bypassed in the graph, timed in the same rounds): {a['full_ms']:.2f} -> "
            f"{a['without_ms']:.2f} ms, measured share {100 * a['measured_share']:.1f} % vs attributed "
            f"{100 * a['attributed_share']:.1f} % ({a['difference_points']:+.1f} points)")
    for stage, s in a.get("stages", {}).items():
        text += (f"; {stage}: measured {100 * s['measured_share']:.1f} %, attributed "
                 f"{100 * s['attributed_share']:.1f} %")
    return text


def _block_rows(r: "ProfileReport") -> list[list[str]]:
    rows = [[b.block, f"{b.channel_ms:.3f}", f"{b.spatial_ms:.3f}", f"{b.gating_ms:.3f}", f"{b.ms:.3f}",
             f"{100 * b.share:.2f} %"] for b in r.blocks]
    if r.blocks:
        rows.append(["all attention", f"{sum(b.channel_ms for b in r.blocks):.3f}",
                     f"{sum(b.spatial_ms for b in r.blocks):.3f}", f"{sum(b.gating_ms for b in r.blocks):.3f}",
                     f"{r.attention_ms:.3f}", f"{100 * r.attention_share:.2f} %"])
    return rows


def _columns(r: "ProfileReport") -> list[str]:
    return [c for c in STAGE_COLUMNS if any(s[c] > 0 for s in r.stages)]


def _stage_rows(r: "ProfileReport") -> list[list[str]]:
    cols = _columns(r)
    return [[s["stage"], *(f"{s[c]:.2f}" for c in cols), f"{s['ms']:.2f}",
             f"{100 * s['ms'] / r.e2e_ms:.1f} %" if r.e2e_ms else "-"] for s in r.stages]


def _module_rows(r: "ProfileReport", depth: int = 2) -> list[list[str]]:
    """Modules down to ``depth`` levels (stages and their blocks), in execution order."""
    return [[m["module"], f"{m['ms']:.3f}", f"{100 * m['share']:.2f} %"] for m in r.modules
            if m["module"].count(".") < depth]


def renderable(r: "ProfileReport") -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = [Text(headline(r), style="bold")]
    blocks = Table(title="attention blocks (ms; share of end-to-end latency)")
    for c in ("block", "channel", "spatial", "gating", "total", "share"):
        blocks.add_column(c, justify="left" if c == "block" else "right")
    for row in _block_rows(r):
        blocks.add_row(*row)
    stages = Table(title="by stage (ms)")
    for c in ("stage", *_columns(r), "total", "share"):
        stages.add_column(c, justify="left" if c == "stage" else "right")
    for row in _stage_rows(r):
        stages.add_row(*row)
    modules = Table(title="by module (stages and blocks; every module in --json)")
    for c in ("module", "ms", "share"):
        modules.add_column(c, justify="left" if c == "module" else "right")
    for row in _module_rows(r):
        modules.add_row(*row)
    parts += [blocks if r.blocks else Text("no attention block found"), stages, modules,
              Text("attribution rule: " + r.rule, style="dim")]
    line = ablation_line(r)
    if line:
        parts.append(Text(line, style="bold"))
    parts += [Text("what to try: " + t) for t in r.tips] + [Text("note: " + n, style="dim") for n in r.notes]
    return Group(*parts)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def markdown(r: "ProfileReport") -> str:
    out = [f"# Profile: {r.model}\n", headline(r) + ".\n"]
    line = ablation_line(r)
    if line:
        out.append(line[0].upper() + line[1:] + ".\n")
    if r.blocks:
        out += ["## Attention blocks\n", _md_table(["block", "channel ms", "spatial ms", "gating ms", "total ms",
                                                     "share"], _block_rows(r))]
    out += ["## By stage (ms)\n", _md_table(["stage", *_columns(r), "total", "share"], _stage_rows(r)),
            "## By module\n", _md_table(["module", "ms", "share"], _module_rows(r)),
            "## Attribution rule\n", r.rule + ".\n"]
    if r.tips:
        out += ["## What to try\n", "".join(f"- {t}\n" for t in r.tips)]
    if r.notes:
        out += ["## Notes\n", "".join(f"- {n}\n" for n in r.notes)]
    return "\n".join(out)
