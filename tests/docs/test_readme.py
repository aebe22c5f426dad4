"""The front page: at most 250 lines, and every link in it resolves (file, and heading anchor)."""

from __future__ import annotations

import re
from pathlib import Path

from .examples import ROOT

MAX_LINES = 250
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _prose(text: str) -> str:
    """The text outside fenced code blocks and inline code."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def github_slug(heading: str) -> str:
    """A heading's anchor as GitHub (and MkDocs, for headings without punctuation) make it."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    return {github_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, flags=re.M)}


def readme_links() -> list[str]:
    return LINK.findall(_prose((ROOT / "README.md").read_text(encoding="utf-8")))


def test_readme_is_at_most_250_lines() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines (at most {MAX_LINES})"


def test_every_readme_link_resolves() -> None:
    links = [link for link in readme_links() if not re.match(r"^[a-z]+://|^mailto:", link)]
    assert len(links) >= 10, links  # the front page links into the docs
    broken = []
    for link in links:
        target, _, anchor = link.partition("#")
        path = ROOT / target if target else ROOT / "README.md"
        if not path.exists():
            broken.append(f"{link}: no such file")
            continue
        if anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{link}: no heading #{anchor} in {target or 'README.md'}")
    assert not broken, broken


def test_slugs_match_github() -> None:
    assert github_slug("Install and first export") == "install-and-first-export"
    assert github_slug("Which exporter (`--exporter`)") == "which-exporter---exporter"
