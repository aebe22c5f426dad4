"""Checkpoint loading used by every command: safe (``weights_only=True``), strict by default,
with a readable report instead of PyTorch's wall of text."""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from .errors import CheckpointError

STATE_DICT_KEYS = ("state_dict", "model")


@dataclass
class LoadReport:
    """What a checkpoint load did: keys that were missing, unexpected or of the wrong shape."""

    path: str
    sha256: str
    loaded: int
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    stripped_prefix: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self, limit: int = 5) -> str:
        """One line: counts and the first few names of each kind of problem."""

        def some(names: list[str]) -> str:
            more = f", ... (+{len(names) - limit} more)" if len(names) > limit else ""
            return ", ".join(names[:limit]) + more

        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing ({some(self.missing)})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected ({some(self.unexpected)})")
        if self.mismatched:
            shapes = [f"{k}: checkpoint {list(c)} vs model {list(m)}" for k, c, m in self.mismatched]
            parts.append(f"{len(self.mismatched)} shape-mismatched ({some(shapes)})")
        return "; ".join(parts) if parts else f"all {self.loaded} tensors loaded"


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint file without executing code from it.

    Returns the state_dict (bare, or found under ``state_dict``/``model``) and the other top-level
    entries of a dict checkpoint (e.g. the ``cbam_deploy`` config our own checkpoints carry).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist or is not a file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  torch's unpickler fails on garbage with IndexError, KeyError, ...
        if isinstance(exc, OSError) and not isinstance(exc, zipfile.BadZipFile):
            from .errors import from_os_error

            raise from_os_error(exc, "read checkpoint") from None
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not isinstance(exc, (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError)):
            reason = f"{type(exc).__name__} while unpickling"  # garbage bytes: the message itself means nothing
        if "unsupported global" in str(exc).lower() or "unsupported class" in str(exc).lower():
            raise CheckpointError(f"checkpoint {str(path)!r} holds Python objects other than tensors (refused: "
                                  "loading it could run code)") from None
        if "Weights only load failed" in reason or isinstance(exc, pickle.UnpicklingError):
            reason = f"{type(exc).__name__}"  # the unpickler's text about globals is noise for a garbage file
        raise CheckpointError(f"cannot read checkpoint {str(path)!r}: not a PyTorch checkpoint, "
                              f"or truncated ({reason})") from None
    extra: dict[str, Any] = {}
    if isinstance(obj, Mapping):
        for key in STATE_DICT_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                extra = {k: v for k, v in obj.items() if k != key}
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds no state_dict (expected a dict of tensors, or one under "
            f"{' / '.join(repr(k) for k in STATE_DICT_KEYS)})"
        )
    return dict(obj), extra


def _strip_prefix(state: dict[str, torch.Tensor], model_keys: set[str]) -> tuple[dict[str, torch.Tensor], str | None]:
    prefix = "module."
    if all(k.startswith(prefix) for k in state) and not any(k.startswith(prefix) for k in model_keys):
        return {k[len(prefix):]: v for k, v in state.items()}, prefix
    return state, None


def load_checkpoint(model: nn.Module, path: str | Path, *, strict: bool = True) -> LoadReport:
    """Load ``path`` into ``model`` in place.

    Strict (default): any missing, unexpected or shape-mismatched key raises ``CheckpointError`` with
    a one-line report. Non-strict: loads what fits (e.g. backbone-only weights) and the report lists
    what stayed uninitialised.
    """
    state, extra = read_checkpoint(path)
    model_state = model.state_dict()
    state, stripped = _strip_prefix(state, set(model_state))
    report = LoadReport(path=str(path), sha256=file_sha256(path), loaded=0, stripped_prefix=stripped, extra=extra)
    report.missing = [k for k in model_state if k not in state]
    report.unexpected = [k for k in state if k not in model_state]
    report.mismatched = [
        (k, tuple(v.shape), tuple(model_state[k].shape))
        for k, v in state.items()
        if k in model_state and tuple(v.shape) != tuple(model_state[k].shape)
    ]
    if strict and not report.complete:
        raise CheckpointError(f"checkpoint {str(path)!r} does not fit the model: {report.summary()}")
    bad = {k for k, _, _ in report.mismatched}
    fitting = {k: v for k, v in state.items() if k in model_state and k not in bad}
    model.load_state_dict(fitting, strict=False)
    report.loaded = len(fitting)
    return report
