"""Errors users can act on, and the exit codes every command returns.

The CLI prints each error as one line and exits with its ``exit_code``; nothing else is caught
silently. The codes, in one place (docs/guides/troubleshooting.md lists them too):

    0   EXIT_OK           the command did what was asked
    1   EXIT_FAILED       a check ran and failed (parity, SHA-256 of a model file, non-finite outputs)
    2   EXIT_USAGE        bad input: an unknown name, a bad value, a missing or unreadable file, an
                          existing output without --force, untrusted model code
    3   EXIT_ENVIRONMENT  the machine: a missing package or device, a read-only or full folder
    129 EXIT_SIGHUP       the terminal went away (SIGHUP); nothing was left half-written
    130 EXIT_SIGINT       interrupted (Ctrl-C); nothing was left half-written
    143 EXIT_SIGTERM      terminated (SIGTERM); nothing was left half-written
"""

from __future__ import annotations

import errno

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3
EXIT_SIGHUP = 129  # 128 + SIGHUP
EXIT_SIGINT = 130  # 128 + SIGINT, what shells report for a process killed by Ctrl-C
EXIT_SIGTERM = 143  # 128 + SIGTERM


class CbamDeployError(Exception):
    """Base class: a problem with what the user asked for or gave us."""

    exit_code = EXIT_FAILED


class UsageError(CbamDeployError, ValueError):
    """Bad input: unknown name, bad shape, missing file, existing output. CLI exit code 2."""

    exit_code = EXIT_USAGE


class CheckpointError(UsageError):
    """A checkpoint that cannot be read or does not fit the model."""


class UntrustedCodeError(UsageError):
    """A model folder names Python code to import and the caller did not trust it. CLI exit code 2."""


class CheckFailedError(CbamDeployError):
    """A check ran and failed (parity beyond tolerance, invalid graph, SHA-256 mismatch). CLI exit code 1."""

    exit_code = EXIT_FAILED


class IntegrityError(CheckFailedError):
    """A model file does not match the SHA-256 its export recorded, or a model produced NaN/Inf."""


class EnvironmentProblem(CbamDeployError):
    """The machine, not the input: a read-only or full folder, a missing device. CLI exit code 3."""

    exit_code = EXIT_ENVIRONMENT


class MissingDependencyError(EnvironmentProblem):
    """An optional package or a device the request needs is not available. CLI exit code 3."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived while a command ran (raised by the CLI's signal handlers).

    A ``KeyboardInterrupt`` (so a ``BaseException``): ``except Exception`` blocks in our code or a
    library's do not swallow it, ``finally`` blocks still remove staging folders, and code that
    shuts down cleanly on Ctrl-C does the same on SIGTERM.
    """

    def __init__(self, signal_name: str, exit_code: int) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.exit_code = exit_code


# The machine's fault, not the input's: no permission, read-only or full file system, I/O error.
_ENVIRONMENT_ERRNOS = frozenset(getattr(errno, name) for name in (
    "EACCES", "EPERM", "EROFS", "ENOSPC", "EDQUOT", "EIO", "EMFILE", "ENFILE", "ENOMEM") if hasattr(errno, name))


def from_os_error(exc: OSError, doing: str = "use") -> CbamDeployError:
    """The one-line error for an ``OSError``: it names the path and what went wrong.

    Permissions, read-only or full file systems are the environment's (exit 3); a missing path or a
    file where a folder was expected is the input's (exit 2).
    """
    where = exc.filename if exc.filename is not None else "(unnamed file)"
    target = f" -> {exc.filename2!r}" if getattr(exc, "filename2", None) else ""
    reason = exc.strerror or str(exc) or type(exc).__name__
    message = f"cannot {doing} {str(where)!r}{target}: {reason}"
    if exc.errno in _ENVIRONMENT_ERRNOS:
        return EnvironmentProblem(message)
    return UsageError(message)
