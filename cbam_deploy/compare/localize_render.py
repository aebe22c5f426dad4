"""A localization report as Markdown and as rich tables (what the commands print)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .localize import LocalizationReport

_AROUND_FIRST = 3  # modules shown before the first failing one, for context


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2e}"


def _relative(name: str, beside: str) -> str:
    """``layer3.1.bn2`` beside ``layer3.1.conv2`` -> ``bn2``; ``ca.fc.1`` beside ``ca.fc.0`` -> ``fc.1``."""
    parent = beside.rpartition(".")[0]
    if not parent or not name.startswith(parent + "."):
        return name
    rest = name[len(parent) + 1:]
    return f"{parent.rpartition('.')[2]}.{rest}" if rest.isdigit() else rest


def _module_rows(report: "LocalizationReport") -> list[list[str]]:
    """The first failing module with the few before it (or the worst few when none fails)."""
    mods = report.modules
    if report.first is not None:
        at = mods.index(report.first)
        shown = mods[max(0, at - _AROUND_FIRST): at + 1]
    else:
        shown = sorted(mods, key=lambda m: m.scaled_error, reverse=True)[:_AROUND_FIRST + 1]
    tol = report.tolerance.max_scaled_error
    return [[m.label + (f" (+ folded {_relative(m.folded, m.module)})" if m.folded else ""), m.tensor,
             _fmt(m.scaled_error), f"{m.cosine:.6f}", "FAIL" if m.failures else "ok",
             f"{m.scaled_error / tol:.3g}x" if tol else "-"] for m in shown]


def _block_rows(report: "LocalizationReport") -> list[list[str]]:
    return [[b.block, _fmt(b.channel), _fmt(b.spatial), _fmt(b.output),
             "-" if b.growth is None else f"{b.growth:.3g}x", "; ".join(dict.fromkeys(b.notes))] for b in report.blocks]


MODULE_HEADERS = ["module", "ONNX tensor", "scaled error", "cosine", "result", "of tolerance"]
BLOCK_HEADERS = ["attention block", "after channel gate", "after spatial gate", "after block", "growth", "notes"]


def markdown(report: "LocalizationReport") -> str:
    """The verdict, the modules up to the first failing one, its inputs, and the per-block table."""
    def table(headers: list[str], rows: list[list[str]]) -> list[str]:
        escape = [[c.replace("|", "\\|") for c in r] for r in rows]
        return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers), *("| " + " | ".join(r) + " |" for r in escape)]

    lines = [f"## Localization ({report.precision}, scaled-error tolerance {report.tolerance.max_scaled_error:g})", "",
             report.verdict, "", *table(MODULE_HEADERS, _module_rows(report))]
    if report.first_inputs:
        lines += ["", "Inputs of the first failing module:", "",
                  *table(["ONNX tensor", "from", "scaled error", "cosine"],
                         [[i["tensor"], i["from"] or "-", _fmt(i["scaled_error"]), f"{i['cosine']:.6f}"]
                          for i in report.first_inputs])]
    if report.blocks:
        lines += ["", "Attention blocks (scaled error against eager):", "", *table(BLOCK_HEADERS, _block_rows(report))]
    lines += [f"\nNote: {note}" for note in report.notes]
    lines += ["", f"{len(report.modules)} module outputs compared, {len(report.unpaired)} modules not paired "
                  f"(see the JSON report), {report.seconds:.2f} s."]
    return "\n".join(lines) + "\n"


def print_report(report: "LocalizationReport", console: Any) -> None:
    """Rich tables on ``console``: the modules around the first failure, then the attention blocks."""
    console.print(renderable(report))


def renderable(report: "LocalizationReport") -> Any:
    """A rich ``Group``: the modules around the first failure, its inputs, then the attention blocks."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    modules = Table(title=f"localization ({report.precision}): {report.verdict}", title_justify="left")
    for header in MODULE_HEADERS:
        if header != "ONNX tensor":  # long names; the Markdown and JSON reports carry them
            modules.add_column(header, overflow="fold", min_width=24 if header == "module" else None)
    for row in _module_rows(report):
        style = "red" if row[4] == "FAIL" else None
        modules.add_row(row[0], *row[2:], style=style)
    parts.append(modules)
    if report.first_inputs:
        parts.append(Text("inputs of " + report.first.label + ": " + "; ".join(
            f"{i['tensor']} ({i['from'] or 'input'}) {_fmt(i['scaled_error'])}" for i in report.first_inputs)))
    if report.blocks:
        blocks = Table(title="attention blocks: scaled error against eager", title_justify="left")
        for header in BLOCK_HEADERS:
            blocks.add_column(header, overflow="fold", min_width=16 if header == "attention block" else None)
        for row in _block_rows(report):
            blocks.add_row(*row)
        parts.append(blocks)
    return Group(*parts)
