"""The runner interface every backend implements (Polygraphy's shape).

A runner is a context manager; ``infer(feed)`` validates names, dtypes, shapes (dynamic axes are
``None`` or a name) and NaN/Inf, then calls ``infer_impl``. Subclasses only implement
``activate_impl``, ``infer_impl`` and ``deactivate_impl``; several runners open at once go in a
``contextlib.ExitStack``.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import IntegrityError, UsageError


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: np.dtype
    shape: tuple[int | str | None, ...]  # int: fixed; str or None: dynamic

    def describe(self) -> str:
        dims = "x".join(str(d) if isinstance(d, int) else (d or "?") for d in self.shape)
        return f"{self.name}: {np.dtype(self.dtype).name}[{dims}]"


class Runner(ABC):
    """Base class: activation, input validation, thread safety.

    The lifecycle is Polygraphy's, made safe to nest: the first ``__enter__`` (or ``activate()``)
    calls ``activate_impl`` (which creates the session, context or engine and resets every
    per-activation state); entering an active runner again only counts, so a runner entered twice
    still holds ONE session; the matching last ``__exit__`` calls ``deactivate_impl``, which frees
    what activation made. A runner can be activated again after that: it starts from a clean state.
    """

    name: str = "runner"

    def __init__(self, *, allow_nonfinite: bool = False) -> None:
        self.allow_nonfinite = allow_nonfinite
        self._depth = 0  # how many times the runner is entered; activation happens at 0 -> 1
        self._lock = threading.Lock()  # backends that are not re-entrant serialise through it
        self.activations = 0  # how many times activate_impl ran: one per session/context made

    @property
    def is_active(self) -> bool:
        return self._depth > 0

    def activate(self) -> "Runner":
        """Activate (first call) or count one more user (later calls); returns the runner."""
        if self._depth == 0:
            self.activate_impl()
            self.activations += 1
        self._depth += 1
        return self

    def deactivate(self) -> None:
        """Undo one ``activate``; the last one frees the session/context/engine."""
        if self._depth == 0:
            return
        self._depth -= 1
        if self._depth == 0:
            self.deactivate_impl()

    def __enter__(self) -> "Runner":
        try:
            return self.activate()
        except BaseException:
            if self._depth == 0:
                self.deactivate_impl()  # free whatever a failed activation made before it failed
            raise

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    @abstractmethod
    def activate_impl(self) -> None:
        """Create the session/context and reset per-activation state (specs, buffers)."""

    def deactivate_impl(self) -> None:
        """Free what ``activate_impl`` created; must tolerate a partial activation."""

    @abstractmethod
    def input_specs(self) -> list[TensorSpec]: ...

    @abstractmethod
    def output_names(self) -> list[str]: ...

    @abstractmethod
    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def validate(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check a feed against the input specs; raise ``UsageError`` with one line on mismatch."""
        specs = {s.name: s for s in self.input_specs()}
        missing = [n for n in specs if n not in feed]
        extra = [n for n in feed if n not in specs]
        if missing or extra:
            raise UsageError(f"{self.name}: inputs {sorted(feed)} do not match the model's "
                             f"{sorted(specs)} (missing: {missing or 'none'}, unexpected: {extra or 'none'})")
        checked = {}
        for name, array in feed.items():
            spec = specs[name]
            if not isinstance(array, np.ndarray):
                raise UsageError(f"{self.name}: input {name!r} must be a numpy array, got {type(array).__name__}")
            if array.dtype != spec.dtype:
                raise UsageError(f"{self.name}: input {name!r} has dtype {array.dtype}, the model expects "
                                 f"{np.dtype(spec.dtype).name}")
            if array.ndim != len(spec.shape) or any(
                isinstance(want, int) and got != want for got, want in zip(array.shape, spec.shape)
            ):
                raise UsageError(f"{self.name}: input {name!r} has shape {list(array.shape)}, the model expects "
                                 f"{spec.describe()}")
            if array.size == 0:  # a batch of 0 (or any empty axis): nothing to run, and backends fail obscurely on it
                raise UsageError(f"{self.name}: input {name!r} is empty (shape {list(array.shape)})")
            if not self.allow_nonfinite and np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
                raise UsageError(f"{self.name}: input {name!r} contains NaN or Inf "
                                 "(pass allow_nonfinite=True to run it anyway)")
            checked[name] = array
        return checked

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Validate ``feed`` and run the model; returns output name -> array."""
        if not self.is_active:
            raise RuntimeError(f"{self.name} is not active: use it as a context manager")
        outputs = self.infer_impl(self.validate(feed))
        if not self.allow_nonfinite:  # finite inputs, NaN/Inf out: corrupted weights or an overflow, never an answer
            bad = [k for k, v in outputs.items()
                   if np.issubdtype(np.asarray(v).dtype, np.floating) and not np.isfinite(v).all()]
            if bad:
                raise IntegrityError(f"{self.name}: the model produced NaN or Inf in output {', '.join(map(repr, bad))} "
                                     "from finite inputs (corrupted weights, or an overflow in this precision)")
        return outputs


def cast_feed(runner: Runner, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Cast a float32 feed to the runner's input dtypes (an FP16 model without FP32 I/O)."""
    dtypes = {s.name: s.dtype for s in runner.input_specs()}
    return {k: v.astype(dtypes.get(k, v.dtype)) for k, v in feed.items()}


def single_input_feed(runner: Runner, array: np.ndarray) -> dict[str, np.ndarray]:
    """Feed for a one-input model."""
    specs: Sequence[TensorSpec] = runner.input_specs()
    if len(specs) != 1:
        raise UsageError(f"{runner.name}: the model has {len(specs)} inputs; give each by name")
    return {specs[0].name: array}


@dataclass(frozen=True)
class Backend:
    """One row of the backend table, declared in its own package (``backends/<name>/entry.py``) and
    collected by ``backends.registry``. Openers and probes import their libraries only when called."""

    name: str
    runs: str  # "onnx" (a model file or bytes), "plan" (a TensorRT plan file) or "module" (PyTorch)
    needs: str  # what must be installed/present, for messages and --help
    options: tuple[str, ...]  # keyword options its runner takes
    opener: Callable[..., Runner]
    problem: Callable[[], str | None]  # why it cannot run here (quiet), or None
    bf16: bool = False  # runs bfloat16 natively (from the FP32 ONNX, option precision="bf16")


def onnx_source(model: Any) -> str | Path | bytes:
    """An ONNX path or bytes from a path, bytes, or an exported model (anything with ``onnx_path``)."""
    source = getattr(model, "onnx_path", model)
    if not isinstance(source, (str, Path, bytes)):
        raise UsageError(f"an ONNX backend takes a model path, bytes or an exported model, not {type(model).__name__}")
    return source
