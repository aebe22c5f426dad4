"""Collecting the examples of README.md and docs/**/*.md, so they run in the suite and cannot drift.

- Every ```python block runs, as written, in its own subprocess in a temporary folder.
- A ```bash block runs only when the line before it is ``<!-- runnable -->``; other bash blocks are
  shown, not run (installs, Docker, a GPU, minutes of training).
- ``<!-- runnable: skip REASON -->`` before a block keeps it out of the run with REASON shown.
- ``<!-- runnable-with: triton-server -->`` before a block: the test exports the reference model,
  starts cbam-serve on free ports and gives the block ``TRITON_URL`` (host:port of its HTTP
  endpoint) and ``MODEL_DIR`` (the exported folder) in the environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```(\w*)\s*$")
MARKER = re.compile(r"^<!--\s*(runnable(?:-with)?)(?::\s*(.*?))?\s*-->\s*$")


@dataclass(frozen=True)
class Example:
    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    marker: str | None  # "runnable" or "runnable-with"
    argument: str  # what follows the marker's colon: a skip reason, or what the block needs

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def skip_reason(self) -> str | None:
        if self.marker == "runnable" and self.argument.startswith("skip"):
            return self.argument[len("skip"):].strip() or "no reason given"
        return None


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def examples(path: Path) -> list[Example]:
    """The fenced code blocks of one Markdown file, with the marker on the line before each."""
    found, lines = [], path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, language = i, m.group(1)
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            i += 1
        prev = lines[start - 1].strip() if start else ""
        mark = MARKER.match(prev)
        found.append(Example(path, start + 1, language, "\n".join(lines[start + 1:i]) + "\n",
                             mark.group(1) if mark else None, (mark.group(2) or "") if mark else ""))
        i += 1
    return found


def collect(language: str) -> list[Example]:
    """Python blocks (all of them) or bash blocks marked runnable."""
    out = []
    for path in markdown_files():
        for ex in examples(path):
            if ex.language != language:
                continue
            if language == "python" or ex.marker is not None:
                out.append(ex)
    return out
