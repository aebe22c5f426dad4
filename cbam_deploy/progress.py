"""Stage reporting: the library announces stages; the CLI shows them with rich."""

from __future__ import annotations

import contextlib
import time
from typing import Iterator, Protocol


#: Width for tables when the output is not a terminal (a pipe, a CI log): rich's 80 columns fold
#: every table cell into slivers; a terminal keeps its own width.
PIPE_WIDTH = 160


def make_console(*, stderr: bool):
    """A rich console for stdout or stderr. Piped (not a terminal), text is never hard-wrapped (a
    warning stays one line for grep and logs; tables are laid out PIPE_WIDTH wide)."""
    import sys

    from rich.console import Console

    tty = (sys.stderr if stderr else sys.stdout).isatty()
    return Console(stderr=stderr, width=None if tty else PIPE_WIDTH, soft_wrap=not tty)


class StageReporter(Protocol):
    def stage(self, name: str, detail: str = "") -> contextlib.AbstractContextManager[None]: ...

    def note(self, message: str) -> None: ...


class SilentReporter:
    """Records stage timings and notes, prints nothing (the library default)."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.notes: list[str] = []

    @contextlib.contextmanager
    def stage(self, name: str, detail: str = "") -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = time.perf_counter() - start

    def note(self, message: str) -> None:
        self.notes.append(message)


class RichReporter(SilentReporter):
    """A spinner per stage, then a tick (or cross) with the stage's time, on stderr."""

    def __init__(self, console=None) -> None:
        super().__init__()
        self.console = console or make_console(stderr=True)

    @contextlib.contextmanager
    def stage(self, name: str, detail: str = "") -> Iterator[None]:
        label = f"{name}" + (f" [dim]{detail}[/]" if detail else "")
        start = time.perf_counter()
        ok = False
        try:
            with self.console.status(f"{label} ..."):
                yield
            ok = True
        finally:
            elapsed = time.perf_counter() - start
            self.timings[name] = elapsed
            mark = "[green]✓[/]" if ok else "[red]✗[/]"
            self.console.print(f"{mark} {label} [dim]{elapsed:.1f}s[/]")

    def note(self, message: str) -> None:
        super().note(message)
        self.console.print(f"  [yellow]![/] {message}")
