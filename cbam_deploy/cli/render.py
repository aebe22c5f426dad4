"""Rendering what the API returns: rich tables on the terminal, JSON and Markdown files.

Human-readable output goes to stderr when ``--json`` puts the result on stdout, so a pipe gets
valid JSON alone.
"""

from __future__ import annotations

import json
from typing import Any, Sequence


#: Width for tables when the output is not a terminal (a pipe, a CI log): rich's 80 columns fold
#: every table cell into slivers; a terminal keeps its own width.
PIPE_WIDTH = 160


def console(json_stdout: bool):
    """The console for human-readable output: stderr when stdout carries JSON."""
    import sys

    from rich.console import Console

    stream = sys.stderr if json_stdout else sys.stdout
    return Console(stderr=json_stdout, width=None if stream.isatty() else PIPE_WIDTH)


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


def print_validation(name: str, report, precisions: Sequence[str], *, json_stdout: bool) -> None:
    """The matrix as a table (stderr under --json, where stdout gets the JSON)."""
    from rich.table import Table

    from ..compare.tolerances import TOLERANCES

    table = Table(title=f"cbam-validate {name}: eager vs each backend x precision")
    for col in ("backend", "precision", "result", "worst scaled err", "min cosine", "top-1 agree", "held-out top-1 (eager)"):
        table.add_column(col)
    for c in report.cells:
        precision = c.precision + (f" ({c.flavor})" if getattr(c, "flavor", "") else "")  # INT8: u8s8 / s8s8
        if c.status == "skipped":
            short = c.reason.split(";")[0].split(" (")[0]  # the full reason is in the JSON and Markdown reports
            table.add_row(c.backend, precision, f"[yellow]skipped[/]: {short}", "", "", "", "")
            continue
        if c.parity is None:  # failed before any comparison (e.g. NaN/Inf outputs)
            table.add_row(c.backend, precision, f"[red]FAIL[/]: {c.failures[0]}", "", "", "", "")
            continue
        outs = [o for case in c.parity.cases for o in case.outputs]
        agree = [o.top1_agreement for o in outs if o.top1_agreement is not None]
        acc = c.accuracy
        table.add_row(c.backend, precision, "[green]pass[/]" if c.status == "pass" else "[red]FAIL[/]",
                      f"{max(o.scaled_error for o in outs):.2e}", f"{min(o.cosine for o in outs):.6f}",
                      f"{min(agree):.3f}" if agree else "-",
                      f"{100 * acc['top1']:.1f}% ({100 * acc['reference_top1']:.1f}%)" if acc else "-")
    out = console(json_stdout)
    out.print(table)
    cases = sorted({case.label for c in report.cells if c.parity for case in c.parity.cases})
    out.print(f"cases: {', '.join(cases)}; tolerances: " + "; ".join(
        f"{p} scaled err <= {t.max_scaled_error:g}, cosine >= {t.min_cosine}" for p, t in TOLERANCES.items() if p in precisions))
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
