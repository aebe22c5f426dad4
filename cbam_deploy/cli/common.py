"""What every command shares: the one place that maps failures to exit codes and one-line
messages, signal handling, --debug, shape parsing.

The codes are defined in ``errors`` (0 ok, 1 a check failed, 2 bad input, 3 environment, 130
SIGINT, 143 SIGTERM); :func:`exit_status` is the only mapping from an exception to a code.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Sequence

from .. import interrupts
from ..errors import (EXIT_ENVIRONMENT, EXIT_FAILED, EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM, EXIT_USAGE,  # noqa: F401
                      CbamDeployError, Interrupted, UsageError, from_os_error)
from .args import ArgGroup

EXIT_INTERRUPTED = EXIT_SIGINT  # the name earlier versions exported


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (no usage block) and exit 2, and which keeps the
    argument groups (``cli.args.ArgGroup``) that parse their own options."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.groups: list[ArgGroup] = []

    def add_group(self, group: ArgGroup) -> ArgGroup:
        """Declare ``group``'s options here; ``run_command`` parses them before the command runs."""
        group.add(self)
        self.groups.append(group)
        return group

    def parse_groups(self, args: argparse.Namespace) -> None:
        """Every group's typed values onto ``args`` (a UsageError names the option)."""
        for group in self.groups:
            group.parse(args)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show full Python tracebacks on errors")


def one_line(text: str) -> str:
    """A message as one line: a library's multi-line text joined, never a traceback."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def exit_status(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one line (without the program name) for any failure."""
    if isinstance(exc, Interrupted):
        return exc.exit_code, interrupts.message(exc)
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_SIGINT, interrupts.message(Interrupted("SIGINT", EXIT_SIGINT))
    if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
        exc = from_os_error(exc)
    if isinstance(exc, CbamDeployError):
        return exc.exit_code, f"error: {one_line(str(exc))}"
    if isinstance(exc, BrokenPipeError):  # e.g. `cbam-infer ... | head -1`: the reader left
        _silence_stdout()
        return EXIT_FAILED, "error: the output pipe was closed before everything was written"
    if isinstance(exc, MemoryError):
        return EXIT_ENVIRONMENT, "error: out of memory (try a smaller batch or fewer images at once)"
    first = one_line(str(exc))[:300]
    return EXIT_FAILED, f"internal error: {type(exc).__name__}: {first} (rerun with --debug for the traceback)"


def _silence_stdout() -> None:
    # Python flushes stdout again at exit and would print a second BrokenPipeError: point it at /dev/null.
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def run_command(prog: str, main: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser,
                argv: Sequence[str] | None = None) -> int:
    """Parse, run, and turn every failure into one line on stderr and an exit code.

    While ``main`` runs, SIGINT/SIGTERM raise ``Interrupted`` (so staging folders are removed on the
    way out); before and after it they end the process at once with one line (nothing is open).
    ``--debug`` re-raises errors with their traceback (never for a signal).
    """
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed by argparse
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
    failure: BaseException | None = None
    code = EXIT_OK
    with interrupts.armed(prog):
        try:
            if isinstance(parser, ArgumentParser):
                parser.parse_groups(args)
            code = main(args)
        except SystemExit:
            raise
        except BaseException as exc:  # noqa: BLE001 (this is the one place every failure is reported)
            failure = exc
        if failure is not None and interrupts.received() is not None:
            failure = interrupts.received()  # a library turned our signal into its own error (e.g. ImportError)
    if failure is None:  # (a command that handles a signal itself, e.g. a server's graceful stop, decides its code)
        return code
    if getattr(args, "debug", False) and not isinstance(failure, KeyboardInterrupt):
        raise failure
    status, line = exit_status(failure)
    try:
        print(f"{prog}: {line}", file=sys.stderr)
    except (OSError, ValueError):  # stderr itself is gone
        pass
    return status

