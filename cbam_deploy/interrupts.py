"""SIGINT, SIGTERM (and SIGHUP) for the commands: at most one line, exit 130 / 143 (129), nothing
half-written.

Python's default SIGTERM kills the process without running ``finally`` blocks, so a staging
folder would stay behind; its default SIGINT prints a traceback when it lands during imports.
Here the signals are handled the same way, in three states:

- no command runs yet (interpreter start, imports): nothing has been written, so print one line
  and leave at once (``os._exit``; no traceback, no unwinding through half-imported modules);
- a command runs (``armed``): raise :class:`~cbam_deploy.errors.Interrupted` in the main thread,
  so every ``finally`` removes its staging folder and ``run_command`` prints one line;
- inside :func:`critical` (the few renames that publish an output): the signal is held until the
  output is complete, then raised.

A second signal while the first unwinds (or after some library swallowed it) removes what this
process staged and leaves at once; inside :func:`critical` it is held like the first.
Ground floor: standard library and ``errors`` only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Callable, Iterator

from .errors import EXIT_SIGHUP, EXIT_SIGINT, EXIT_SIGTERM, Interrupted

SIGNALS = {signal.SIGINT: ("SIGINT", EXIT_SIGINT), signal.SIGTERM: ("SIGTERM", EXIT_SIGTERM)}
if hasattr(signal, "SIGHUP"):  # POSIX: the terminal closed under a running command
    SIGNALS[signal.SIGHUP] = ("SIGHUP", EXIT_SIGHUP)


class _State:
    prog = "cbam-deploy"
    armed = False
    received: Interrupted | None = None
    critical = 0
    pending: Interrupted | None = None
    cleanups: list[Callable[[], None]] = []


def add_cleanup(cleanup: Callable[[], None]) -> None:
    """Run ``cleanup`` before leaving on a signal that lands while no command is armed."""
    _State.cleanups.append(cleanup)


def _leave_now(exc: Interrupted) -> None:
    for cleanup in _State.cleanups:
        with contextlib.suppress(Exception):
            cleanup()
    with contextlib.suppress(Exception):  # the raw descriptor: sys.stderr may be mid-write (reentrant call)
        os.write(2, f"{_State.prog}: {message(exc)}\n".encode())
    os._exit(exc.exit_code)


def _handler(signum: int, frame: object) -> None:
    name, code = SIGNALS[signal.Signals(signum)]
    exc = Interrupted(name, code)
    if _State.critical:  # an output is being published: finish it, then raise
        _State.pending = _State.pending or exc
        return
    if not _State.armed or _State.received is not None:
        # Nothing runs yet, or a second signal while the first unwinds (or after a library swallowed
        # it): remove what this process staged and leave now.
        _leave_now(_State.received or exc)
    _State.received = exc
    raise exc


def message(exc: Interrupted) -> str:
    """The one line printed for a signal."""
    what = {"SIGINT": "interrupted", "SIGHUP": "hung up"}.get(exc.signal_name, "terminated")
    return f"{what} ({exc.signal_name}); nothing was left half-written"


def install(prog: str | None = None) -> bool:
    """Handle SIGINT and SIGTERM as described above; returns False off the main thread (no-op)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    if prog:
        _State.prog = prog
    for sig in SIGNALS:
        # An ignored signal stays ignored (nohup, or a shell's background job): that was asked for.
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, _handler)
    return True


def install_for_console_script() -> None:
    """Called on ``import cbam_deploy``: installs the handlers only in a ``cbam-*`` console script,
    so a signal while its imports run prints one line; library users keep their own handlers."""
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if prog.startswith("cbam-"):
        install(prog.removesuffix(".exe"))


@contextlib.contextmanager
def armed(prog: str) -> Iterator[None]:
    """While a command runs: signals raise ``Interrupted`` so cleanups run. Restores the previous
    handlers afterwards (tests call commands in-process)."""
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    installed = install(prog)
    _State.armed, _State.received, _State.pending = installed, None, None
    try:
        yield
    finally:
        _State.armed = False
        if installed:
            for sig, handler in previous.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def critical() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while publishing an output (a few renames); raise it right after."""
    _State.critical += 1
    try:
        yield
    finally:
        _State.critical -= 1
        if not _State.critical and _State.pending is not None:
            pending, _State.pending = _State.pending, None
            raise pending


def received() -> Interrupted | None:
    """The signal received since the current command was armed, if any."""
    return _State.received


# Run in a fresh interpreter, not in a forked copy of the parent: a ``preexec_fn`` runs Python in
# the child of a multi-threaded parent (a test worker with ONNX Runtime and OpenVINO threads),
# which Python documents as unsafe. Exec keeps default dispositions, so the target starts with them.
_RESET_AND_EXEC = ("import os, signal, sys\n"
                   "for name in ('SIGINT', 'SIGHUP', 'SIGTERM'):\n"
                   "    if hasattr(signal, name):\n"
                   "        signal.signal(getattr(signal, name), signal.SIG_DFL)\n"
                   "os.execv(sys.argv[1], sys.argv[1:])\n")


def with_default_signals(argv: list[str]) -> list[str]:
    """``argv`` started with SIGINT, SIGHUP and SIGTERM at their defaults: a harness started with
    ``nohup ... &`` hands its children SIGINT/SIGHUP ignored, and a command rightly keeps an ignored
    signal ignored (see :func:`install`), so a test or harness that signals it must reset them.
    ``argv[0]`` must be a path (an executable or a script with a shebang)."""
    return [sys.executable, "-c", _RESET_AND_EXEC, *argv]
