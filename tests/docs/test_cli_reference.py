"""The CLI reference page is rendered from the commands' own parsers: every console script, and every
option of each with its help, appears in it."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

import pytest

from .examples import ROOT

if sys.version_info < (3, 11):
    pytest.importorskip("tomli", reason="the docs hook reads pyproject.toml with tomli on Python 3.10 (docs extra)")


def _hook():
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "docs" / "hooks" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_command_and_option_is_in_the_reference() -> None:
    hook = _hook()
    page = hook.on_page_markdown(f"# Commands\n\n{hook.MARKER}\n", None, None, None)
    assert hook.MARKER not in page
    commands = hook.commands()
    assert len(commands) >= 10 and ("cbam-export", "cbam_deploy.cli.export") in commands
    for name, module in commands:
        assert f"## {name}\n" in page, name
        parser = importlib.import_module(module).build_parser()
        assert parser.format_usage().strip() in page, name
        for action in parser._actions:
            if action.help == argparse.SUPPRESS:
                continue
            for flag in action.option_strings:
                assert f"`{flag}" in page, (name, flag)
            if action.help and "%(" not in action.help:
                assert " ".join(action.help.split()).replace("|", "\\|") in page, (name, action.dest)


def test_pages_without_the_marker_are_untouched() -> None:
    hook = _hook()
    assert hook.on_page_markdown("# Guide\n\ntext\n", None, None, None) == "# Guide\n\ntext\n"
