"""What every command shares: one-line errors with the right exit code, --debug, shape parsing."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Sequence

from ..errors import CbamDeployError, UsageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (no usage block) and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show full Python tracebacks on errors")


def run_command(prog: str, main: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser,
                argv: Sequence[str] | None = None) -> int:
    """Parse, run, and turn every failure into one line on stderr and an exit code."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed by argparse
        return int(exc.code or 0)
    try:
        return main(args)
    except CbamDeployError as exc:
        if args.debug:
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing was left half-written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug of ours or a library's: still one line, with the way to see more
        if args.debug:
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(f"{prog}: internal error: {type(exc).__name__}: {first} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_FAILED


def parse_shape(text: str) -> tuple[int, ...]:
    """'1x3x224x224' -> (1, 3, 224, 224); every dimension a positive integer."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise UsageError(f"bad shape {text!r}: expected positive integers joined by 'x', e.g. 1x3x224x224") from None
    if not shape or any(d <= 0 for d in shape):
        raise UsageError(f"bad shape {text!r}: every dimension must be a positive integer")
    return shape


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))
