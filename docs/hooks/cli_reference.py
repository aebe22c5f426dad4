"""MkDocs hook: the CLI reference, rendered at build time from the commands' own argparse parsers.

Every console script in pyproject.toml's ``[project.scripts]`` names ``cbam_deploy.cli.<cmd>:main``;
its module's ``build_parser()`` is the parser the command itself uses, so this page cannot drift
from ``--help``. A page asks for it with the marker ``<!-- cli-reference -->``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

MARKER = "<!-- cli-reference -->"
ROOT = Path(__file__).resolve().parents[2]


def commands() -> list[tuple[str, str]]:
    """(command, module) for every console script, in pyproject.toml's order."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    return [(name, target.split(":")[0]) for name, target in scripts.items()]


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _option(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    takes_value = action.nargs != 0
    metavar = ""
    if takes_value:
        metavar = " " + (action.metavar if isinstance(action.metavar, str) else action.dest.upper())
        if action.choices and not action.metavar:
            metavar = " {" + ",".join(map(str, action.choices)) + "}"
    return ", ".join(f"`{s}{metavar}`" for s in action.option_strings)


def render(parser: argparse.ArgumentParser) -> str:
    """One command's section: description, usage, and a table of options per argument group."""
    out = []
    if parser.description:
        out += [parser.description.strip(), ""]
    out += ["```text", parser.format_usage().strip(), "```", ""]
    formatter = parser._get_formatter()
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a.help != argparse.SUPPRESS]
        if not actions:
            continue
        header = "argument" if all(not a.option_strings for a in actions) else "option"
        out += [f"**{group.title}**", "", f"| {header} | what it does |", "|---|---|"]
        for action in actions:
            help_text = formatter._expand_help(action) if action.help else ""
            out.append(f"| {_cell(_option(action))} | {_cell(help_text)} |")
        out.append("")
    if parser.epilog:
        out += [parser.epilog.strip(), ""]
    return "\n".join(out)


def reference() -> str:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    parts = []
    for name, module in commands():
        parser = importlib.import_module(module).build_parser()
        parts += [f"## {name}", "", render(parser), ""]
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 (MkDocs' signature)
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, reference())
