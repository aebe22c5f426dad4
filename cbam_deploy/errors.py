"""Errors users can act on. The CLI prints them as one line; nothing else is caught silently."""

from __future__ import annotations


class CbamDeployError(Exception):
    """Base class: a problem with what the user asked for or gave us."""

    exit_code = 1


class UsageError(CbamDeployError, ValueError):
    """Bad input: unknown name, bad shape, missing file, existing output. CLI exit code 2."""

    exit_code = 2


class CheckpointError(UsageError):
    """A checkpoint that cannot be read or does not fit the model."""


class CheckFailedError(CbamDeployError):
    """A check ran and failed (parity beyond tolerance, invalid graph). CLI exit code 1."""

    exit_code = 1


class MissingDependencyError(CbamDeployError):
    """An optional package or a device the request needs is not available. CLI exit code 2."""

    exit_code = 2
