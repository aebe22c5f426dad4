"""The one mapping from a failure to an exit code and a line (``cli.common.exit_status``)."""

from __future__ import annotations

import errno

import pytest

from cbam_deploy.cli.common import ArgumentParser, exit_status, run_command
from cbam_deploy.errors import (EXIT_ENVIRONMENT, EXIT_FAILED, EXIT_SIGINT, EXIT_SIGTERM, EXIT_USAGE, CheckFailedError,
                                EnvironmentProblem, Interrupted, MissingDependencyError, UsageError)


@pytest.mark.parametrize("exc, code, needle", [
    (UsageError("bad --x"), EXIT_USAGE, "error: bad --x"),
    (CheckFailedError("parity failed"), EXIT_FAILED, "error: parity failed"),
    (MissingDependencyError("needs onnxruntime"), EXIT_ENVIRONMENT, "needs onnxruntime"),
    (EnvironmentProblem("disk"), EXIT_ENVIRONMENT, "disk"),
    (PermissionError(errno.EACCES, "Permission denied", "/srv/models"), EXIT_ENVIRONMENT, "'/srv/models'"),
    (OSError(errno.EROFS, "Read-only file system", "/mnt/ro/x"), EXIT_ENVIRONMENT, "Read-only file system"),
    (OSError(errno.ENOSPC, "No space left on device", "/full/x"), EXIT_ENVIRONMENT, "/full/x"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "in.npy"), EXIT_USAGE, "'in.npy'"),
    (MemoryError(), EXIT_ENVIRONMENT, "out of memory"),
    (Interrupted("SIGTERM", EXIT_SIGTERM), EXIT_SIGTERM, "SIGTERM"),
    (KeyboardInterrupt(), EXIT_SIGINT, "SIGINT"),
    (RuntimeError("line one\nline two\n  at frame"), EXIT_FAILED, "internal error: RuntimeError: line one line two"),
])
def test_every_failure_is_one_line_with_its_code(exc: BaseException, code: int, needle: str):
    status, line = exit_status(exc)
    assert status == code and needle in line and "\n" not in line


def test_run_command_prints_one_line_and_returns_the_code(capsys):
    def boom(args):
        raise OSError(errno.ENOSPC, "No space left on device", "/full/model")

    parser = ArgumentParser(prog="cbam-test")
    parser.add_argument("--debug", action="store_true")
    assert run_command("cbam-test", boom, parser, []) == EXIT_ENVIRONMENT
    err = capsys.readouterr().err
    assert err == "cbam-test: error: cannot use '/full/model': No space left on device\n"


def test_usage_errors_from_argparse_are_one_line(capsys):
    parser = ArgumentParser(prog="cbam-test")
    parser.add_argument("--n", type=int)
    assert run_command("cbam-test", lambda a: 0, parser, ["--n", "x"]) == EXIT_USAGE
    assert capsys.readouterr().err.count("\n") == 1
