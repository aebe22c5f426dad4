"""The hostile battery's shared pieces: one exported model (through the API) for the whole package,
hostile copies of it, and helpers that run a command and check what the user sees.

Every case asserts the exit code, one line on stderr naming the problem and no traceback, that
nothing is left behind (no ``.NAME.XXXX.partial``, ``.lock`` or ``.old``) and, where code could run,
that it did not (a factory that would write a marker file).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

CLASSES = ["circle", "square", "triangle", "star"]
PREPROCESSING = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "input_size": [32, 32], "layout": "NCHW",
                 "scale": "1/255 then (x - mean) / std"}
STAGING_DEBRIS = (".partial", ".lock", ".old")


@dataclass
class Result:
    code: int
    out: str
    err: str

    def error_lines(self, prog: str) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith(f"{prog}:")]


def run_cli(capfd: pytest.CaptureFixture[str], command: str, *argv: str) -> Result:
    """``cbam-COMMAND ARGV`` in this process (the console script's ``main``): exit code and output."""
    capfd.readouterr()
    module = importlib.import_module(f"cbam_deploy.cli.{command.removeprefix('cbam-').replace('-', '_')}")
    code = module.main([str(a) for a in argv])
    out, err = capfd.readouterr()
    return Result(code, out, err)


def assert_refused(result: Result, prog: str, code: int, *needles: str) -> str:
    """Exit ``code``, exactly one ``prog: error: ...`` line containing ``needles``, no traceback."""
    assert result.code == code, f"exit {result.code}, expected {code}; stderr: {result.err[-2000:]}"
    assert "Traceback" not in result.err and "internal error" not in result.err, result.err[-2000:]
    lines = result.error_lines(prog)
    assert len(lines) == 1, result.err[-2000:]
    line = lines[0]
    if code:
        assert line.startswith(f"{prog}: error: "), line
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line


def debris(*roots: Path) -> list[Path]:
    """Staging leftovers (``.NAME.XXXX.partial``, ``.NAME.lock``, ``.NAME.XXXX.old``) under ``roots``."""
    found = []
    for root in roots:
        if root.exists():
            found += [p for p in root.rglob(".*") if p.name.endswith(STAGING_DEBRIS)]
    return found


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` and its SHA-256: to prove a folder was not touched."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def reseal(model_dir: Path, proto) -> None:
    """Write ``proto`` as the model and record its SHA-256 in export.json, as a hostile sender would."""
    data = proto.SerializeToString()
    (model_dir / "1" / "model.onnx").write_bytes(data)
    report = json.loads((model_dir / "export.json").read_text())
    report["sha256"] = hashlib.sha256(data).hexdigest()
    (model_dir / "export.json").write_text(json.dumps(report))


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="session")
def exported(workspace: Path) -> Path:
    """One small classifier exported through the API, with image preprocessing and class names."""
    from cbam_deploy.api import export
    from cbam_deploy.models import create_model

    model = create_model("resnet_mini", "original", num_classes=len(CLASSES)).eval()
    report = export(model, [(1, 3, 32, 32)], out=workspace / "models", name="good", classifier=True,
                    metadata={"preprocessing": PREPROCESSING, "classes": CLASSES})
    return Path(report.model_dir)


def clone(exported: Path, name: str) -> Path:
    target = exported.parent / name
    if not target.exists():
        shutil.copytree(exported, target)
    return target


@dataclass
class Evil:
    folder: Path
    marker: Path
    factory: str


@pytest.fixture(scope="session")
def evil(exported: Path, workspace: Path) -> Evil:
    """A model folder whose metadata names a factory that would write a marker file when imported;
    export.json is resealed so the SHA-256 check passes (the sender controls both files)."""
    import onnx

    marker = workspace / "MARKER_factory_ran"
    code = workspace / "payload.py"
    code.write_text(f"open({str(marker)!r}, 'w').write('ran')\n\ndef build(**kwargs):\n    raise SystemExit(9)\n")
    folder = clone(exported, "evil")
    proto = onnx.load(str(folder / "1" / "model.onnx"))
    keep = [p for p in proto.metadata_props if p.key != "cbam_deploy.model_spec"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    factory = f"{code}:build"
    proto.metadata_props.add(key="cbam_deploy.user_model",
                             value=json.dumps({"factory": factory, "kwargs": {}, "weights": None, "seed": 0}))
    reseal(folder, proto)
    return Evil(folder, marker, factory)


@pytest.fixture(scope="session")
def nan_model(exported: Path) -> Path:
    """The model with every large weight overwritten by NaN (protobuf still valid); export.json not resealed."""
    import onnx
    from onnx import numpy_helper

    folder = clone(exported, "nan")
    proto = onnx.load(str(folder / "1" / "model.onnx"))
    for tensor in proto.graph.initializer:
        array = numpy_helper.to_array(tensor)
        if array.dtype == np.float32 and array.size > 64:
            tensor.CopyFrom(numpy_helper.from_array(np.full_like(array, np.nan), tensor.name))
    (folder / "1" / "model.onnx").write_bytes(proto.SerializeToString())
    return folder


@pytest.fixture(scope="session")
def batch(workspace: Path) -> Path:
    path = workspace / "batch.npy"
    np.save(path, np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32))
    return path
