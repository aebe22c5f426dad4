"""Users' own networks: ``MODULE:FACTORY`` or ``path/to/file.py:FACTORY`` -> an eval-mode model.

Importing a user's file runs its code; that is explicit (the user names it) and said in ``--help``.
Errors raised by user code are reported as one line naming the user's file and line, never as a
traceback from deep inside our pipeline.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import sys
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..checkpoint import LoadReport, file_sha256, load_checkpoint
from ..errors import UsageError


@dataclass
class UserModelSpec:
    """Where a user's model comes from; stored in the export's metadata so later stages rebuild it."""

    factory: str  # "package.module:make_net" or "/abs/path/file.py:make_net"
    kwargs: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None  # checkpoint path, loaded strictly; None = as the factory built it
    strict: bool = True
    seed: int = 0  # torch's seed before the factory runs, so factory-initialised weights are reproducible

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_model_kwargs(text: str | None) -> dict[str, Any]:
    """``--model-kwargs`` JSON object -> dict."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--model-kwargs is not valid JSON ({exc.msg} at column {exc.colno}): {text!r}") from None
    if not isinstance(value, dict):
        raise UsageError(f"--model-kwargs must be a JSON object like '{{\"num_classes\": 10}}', got {text!r}")
    return value


def _split_reference(ref: str) -> tuple[str, str]:
    source, sep, attr = ref.rpartition(":")
    # "C:\\x.py:f" has two colons; rpartition keeps the drive letter with the path.
    if not sep or not source or not attr.isidentifier():
        raise UsageError(f"--model {ref!r} must be MODULE:FACTORY or path/to/file.py:FACTORY, e.g. "
                         "my_project.nets:build_net or nets.py:build_net")
    return source, attr


def user_code_location(exc: BaseException) -> str | None:
    """'file.py, line N' of the deepest traceback frame outside torch, the standard library and us."""
    import sysconfig

    import torch

    skip = tuple(str(Path(p).resolve()) for p in (Path(torch.__file__).parent, Path(__file__).parents[1],
                                                  sysconfig.get_paths()["stdlib"]))
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith("<") and not str(Path(f.filename).resolve()).startswith(skip)]
    return f"{frames[-1].filename}, line {frames[-1].lineno}" if frames else None


def describe_exception(exc: BaseException) -> str:
    """One line: where in user code (when known), exception type and first message line."""
    where = user_code_location(exc)
    return (f"at {where}: " if where else "") + _describe(exc)


def _describe(exc: BaseException) -> str:
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def canonical_reference(ref: str) -> str:
    """A file path made absolute, so a rebuild from another working directory finds the same file."""
    source, attr = _split_reference(ref)
    if source.endswith(".py") or "/" in source or "\\" in source:
        return f"{Path(source).resolve()}:{attr}"
    return ref


def _package_parts(path: Path) -> list[str]:
    """Package names from the outermost package folder down to the file's folder ([] when the
    folder has no ``__init__.py``)."""
    parts: list[str] = []
    folder = path.resolve().parent
    while (folder / "__init__.py").is_file() and folder.name.isidentifier():
        parts.insert(0, folder.name)
        folder = folder.parent
    return parts


def _exec_file(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"{str(path)!r} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _import_in_package(path: Path, parts: list[str], tag: str):
    """Import ``path`` as a submodule of its package, so ``from .cbam import *`` works. The outermost
    package gets a private name (``cbam_user_<hash>_<name>``): a user's ``models`` or ``utils``
    folder must not collide with an installed package of that name."""
    root_dir = path.resolve().parents[len(parts) - 1]
    root = f"cbam_user_{tag}_{parts[0]}"
    spec = importlib.util.spec_from_file_location(root, root_dir / "__init__.py",
                                                  submodule_search_locations=[str(root_dir)])
    if spec is None or spec.loader is None:
        raise UsageError(f"package folder {str(root_dir)!r} cannot be imported")
    package = importlib.util.module_from_spec(spec)
    sys.modules[root] = package
    spec.loader.exec_module(package)
    return importlib.import_module(".".join([root, *parts[1:], path.stem]))


def _import_file(path: Path, ref: str):
    """Execute a user's file: as part of its package when its folder has ``__init__.py``, else alone.
    The folder above the outermost package goes on ``sys.path`` while it runs, as with
    ``python file.py``, so sibling and absolute imports work."""
    if not path.is_file():
        raise UsageError(f"--model {ref!r}: no such file {str(path)!r}")
    tag = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    parts = _package_parts(path)
    folder = str(path.resolve().parents[len(parts)])
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    prefix = f"cbam_user_{tag}"
    for stale in [m for m in sys.modules if m.startswith(prefix)]:  # a fresh import each time
        del sys.modules[stale]
    try:
        return _import_in_package(path, parts, tag) if parts else _exec_file(path, prefix)
    except UsageError as exc:
        raise UsageError(f"--model {ref!r}: {exc}") from None
    except Exception as exc:
        for name in [m for m in sys.modules if m.startswith(prefix)]:
            del sys.modules[name]
        raise UsageError(f"importing {str(path)!r} failed {describe_exception(exc)}") from exc
    finally:
        if added:
            sys.path.remove(folder)


def load_factory(ref: str) -> Callable[..., Any]:
    """Import ``MODULE:FACTORY`` or ``file.py:FACTORY`` and return the callable (a class works too)."""
    source, attr = _split_reference(ref)
    if source.endswith(".py") or "/" in source or "\\" in source:
        module = _import_file(Path(source), ref)
        label = source
    else:
        try:
            module = importlib.import_module(source)
        except Exception as exc:
            raise UsageError(f"importing module {source!r} failed {describe_exception(exc)}") from exc
        label = f"module {source!r}"
    factory = getattr(module, attr, None)
    if factory is None:
        public = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                        and getattr(v, "__module__", None) == module.__name__)
        raise UsageError(f"{label} has no {attr!r}" + (f"; it defines: {', '.join(public)}" if public else ""))
    if not callable(factory):
        raise UsageError(f"{label}: {attr!r} is a {type(factory).__name__}, not a callable that builds a model")
    return factory


@dataclass
class BuiltUserModel:
    model: nn.Module
    spec: UserModelSpec
    checkpoint_sha256: str | None
    load_report: LoadReport | None


def build_user_model(spec: UserModelSpec) -> BuiltUserModel:
    """Call the factory with the kwargs, load the weights (strict unless told), switch to eval."""
    factory = load_factory(spec.factory)
    torch.manual_seed(spec.seed)
    try:
        model = factory(**spec.kwargs)
    except Exception as exc:
        raise UsageError(f"{spec.factory}({', '.join(f'{k}={v!r}' for k, v in spec.kwargs.items())}) raised "
                         f"{describe_exception(exc)}") from exc
    if not isinstance(model, nn.Module):
        raise UsageError(f"{spec.factory} returned a {type(model).__name__}, not a torch.nn.Module")
    report = None
    if spec.weights:
        report = load_checkpoint(model, spec.weights, strict=spec.strict)
    model.eval()
    return BuiltUserModel(model, spec, file_sha256(spec.weights) if spec.weights else None, report)


def state_sha256(model: nn.Module) -> str:
    """SHA-256 over every parameter and buffer (names, dtypes, shapes, bytes): proves a rebuilt model
    has the exported weights, also when they came from the factory rather than a checkpoint."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
