"""Rendering what the API returns: rich tables on the terminal, JSON and Markdown files.

Human-readable output goes to stderr when ``--json`` puts the result on stdout, so a pipe gets
valid JSON alone.
"""

from __future__ import annotations

import json
from typing import Any, Sequence


def console(json_stdout: bool):
    """The console for human-readable output: stderr when stdout carries JSON; never hard-wrapped
    when not a terminal (see ``progress.make_console``)."""
    from ..progress import make_console

    return make_console(stderr=json_stdout)


def print_json(data: Any) -> None:
    """Strict JSON on stdout: NaN or Inf would make it invalid, so they are written as null."""
    print(json.dumps(_finite(data), indent=2, default=str, allow_nan=False))


def _finite(data: Any) -> Any:
    if isinstance(data, float) and (data != data or data in (float("inf"), float("-inf"))):
        return None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


def short_reason(reason: str, *, items: int = 1) -> str:
    """A skip reason in a few words: its first clause, and a long list cut to its first item(s) (the
    full reason is in the JSON and Markdown reports)."""
    first = reason.split(";")[0].split(" (")[0].strip()
    head, sep, tail = first.rpartition(": ")
    names = [n.strip() for n in tail.split(",") if n.strip()]
    if sep and len(names) > items:
        return f"{head}: {', '.join(names[:items])} and {len(names) - items} more"
    return first


def gate_text(cell) -> str:
    """The scaled-error bound this cell was judged by, and where it came from."""
    gate = cell.parity.gate if cell.parity is not None else None
    bound = gate.gate if gate is not None else cell.parity.tolerance.max_scaled_error
    source = gate.source if gate is not None else "table"
    if source == "float32 floor":
        source = f"{gate.floor_multiple:g}x float32 floor"
    return f"<= {bound:.2g} ({source})"


def _skipped_lines(cells) -> list[str]:
    """One line per reason for the cells that cannot run here: which backends x precisions, why."""
    from rich.markup import escape

    by_reason: dict[str, dict[str, list[str]]] = {}
    for c in cells:
        by_reason.setdefault(short_reason(c.reason), {}).setdefault(c.backend, []).append(c.precision)
    lines = []
    for reason, backends in by_reason.items():
        groups: dict[tuple[str, ...], list[str]] = {}
        for backend, precisions in backends.items():
            groups.setdefault(tuple(precisions), []).append(backend)
        what = "; ".join(f"{', '.join(b)} ({', '.join(p)})" for p, b in groups.items())
        lines.append(f"[yellow]cannot run here[/]: {escape(what)}: {escape(reason)}")  # '.[openvino]' is no markup
    return lines


def verdict(report) -> str:
    """One line: passed or failed, how many cells ran, how many could not run here."""
    ran = [c for c in report.cells if c.status != "skipped"]
    failed = [c for c in ran if c.status == "fail"]
    skipped = len(report.cells) - len(ran)
    rest = f"; {skipped} cannot run here" if skipped else ""
    if report.passed:
        return f"[bold green]verdict: PASS[/]: {len(ran)} of {len(ran)} cells that ran passed{rest}"
    if failed or report.integrity_problem:
        what = ", ".join(c.label for c in failed) or "no cell"
        integrity = "; model.onnx does not match its export" if report.integrity_problem else ""
        return f"[bold red]verdict: FAIL[/]: {len(failed)} of {len(ran)} cells failed ({what}){integrity}{rest}"
    return f"[bold red]verdict: FAIL[/]: no cell could run here{rest}"


def print_validation(name: str, report, precisions: Sequence[str], *, json_stdout: bool) -> None:
    """The matrix as a table of the cells that ran (with the gate each was judged by), one line per
    reason for the cells that cannot run here, and a one-line verdict (stderr under --json)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"cbam-validate {name}: eager vs each backend x precision")
    for col in ("backend", "precision", "result", "worst scaled err", "gate", "min cosine", "top-1 agree",
                "held-out top-1 (eager)"):
        table.add_column(col)
    for c in report.cells:
        precision = c.precision + (f" ({c.flavor})" if getattr(c, "flavor", "") else "")  # INT8: u8s8 / s8s8
        if c.status == "skipped":
            continue
        if c.parity is None:  # failed before any comparison (e.g. NaN/Inf outputs)
            table.add_row(c.backend, precision, f"[red]FAIL[/]: {escape(c.failures[0])}", "", "", "", "", "")
            continue
        outs = [o for case in c.parity.cases for o in case.outputs]
        agree = [o.top1_agreement for o in outs if o.top1_agreement is not None]
        acc = c.accuracy
        table.add_row(c.backend, precision, "[green]pass[/]" if c.status == "pass" else "[red]FAIL[/]",
                      f"{max(o.scaled_error for o in outs):.2e}", gate_text(c),
                      f"{min(o.cosine for o in outs):.6f} (>= {c.parity.tolerance.min_cosine:g})",
                      f"{min(agree):.3f}" if agree else "-",
                      f"{100 * acc['top1']:.1f}% ({100 * acc['reference_top1']:.1f}%)" if acc else "-")
    out = console(json_stdout)
    if table.rows:
        out.print(table)
    for line in _skipped_lines([c for c in report.cells if c.status == "skipped"]):
        out.print(line)
    cases = sorted({case.label for c in report.cells if c.parity for case in c.parity.cases})
    if cases:
        out.print(f"cases: {', '.join(cases)}. gate: the scaled-error bound each cell was judged by: (table) the "
                  "tolerance table's; (Nx float32 floor) FP32 adapted to the model's float32 conditioning")
    out.print(verdict(report))
    if json_stdout:
        print_json(report.to_dict())


def print_localization(localization, *, json_stdout: bool) -> None:
    """The localizer's own table (it knows how to render itself)."""
    render = getattr(localization, "rich_table", None)
    if render is not None:
        console(True).print(render())
    else:
        console(True).print(str(localization))


def write_reports(args, data: dict[str, Any], report=None) -> None:
    """--json-out and --markdown, written atomically."""
    from ..artifacts import atomic_write_text

    if getattr(args, "json_out", None):
        atomic_write_text(args.json_out, json.dumps(_finite(data), indent=2, default=str, allow_nan=False) + "\n")
    if getattr(args, "markdown", None) and report is not None:
        from ..api.validate import markdown_table

        text = markdown_table(report.cells)
        if getattr(report, "integrity_problem", ""):
            text = f"**Integrity:** {report.integrity_problem}\n\n" + text
        loc = getattr(report, "localization", None)
        if loc is not None and hasattr(loc, "to_markdown"):
            text += "\n" + loc.to_markdown()
        atomic_write_text(args.markdown, text)
