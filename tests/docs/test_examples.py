"""Every Python example of the README and the docs, and every shell example marked runnable, runs as
written in a temporary folder (see examples.py for the markers)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .examples import ROOT, Example, collect, examples

PYTHON = collect("python")
BASH = collect("bash")
TIMEOUT = 600


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(extra or {})
    return env


def _run(example: Example, argv: list[str], cwd: Path, extra: dict[str, str] | None = None) -> None:
    (cwd / "examples").symlink_to(ROOT / "examples")  # the docs' paths to the example networks
    done = subprocess.run(argv, cwd=cwd, env=_env(extra), capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, (f"{example.id} exited {done.returncode}\n--- code\n{example.code}"
                                  f"--- stdout\n{done.stdout[-3000:]}--- stderr\n{done.stderr[-3000:]}")


@pytest.fixture(scope="module")
def triton_server(tmp_path_factory):
    """cbam-serve on free ports with the reference model (for blocks that need a server)."""
    pytest.importorskip("pytriton", reason="the serve extra (pip install -e '.[serve]') is not installed")
    from cbam_deploy.cli.export import main as export_main
    from cbam_deploy.serving.process import ServeProcess

    folder = tmp_path_factory.mktemp("docs_serve")
    assert export_main(["--out", str(folder / "models")]) == 0
    model_dir = folder / "models" / "original_resnet_mini"
    with ServeProcess(model_dir, "--threads", "1", log=folder / "serve.log", tmpdir=folder / "tmp") as server:
        yield {"TRITON_URL": server.http_url, "MODEL_DIR": str(model_dir)}


def _needs(example: Example, request) -> dict[str, str]:
    if example.marker != "runnable-with":
        return {}
    if example.argument == "triton-server":
        return request.getfixturevalue("triton_server")
    raise AssertionError(f"{example.id}: unknown requirement {example.argument!r}")


@pytest.mark.parametrize("example", PYTHON, ids=[e.id for e in PYTHON])
def test_python_example(example: Example, tmp_path: Path, request) -> None:
    if example.skip_reason:
        pytest.skip(example.skip_reason)
    script = tmp_path / "example.py"
    script.write_text(example.code, encoding="utf-8")
    _run(example, [sys.executable, str(script)], tmp_path, _needs(example, request))


@pytest.mark.parametrize("example", BASH, ids=[e.id for e in BASH])
def test_runnable_shell_example(example: Example, tmp_path: Path, request) -> None:
    if example.skip_reason:
        pytest.skip(example.skip_reason)
    _run(example, ["bash", "-euo", "pipefail", "-c", example.code], tmp_path, _needs(example, request))


def test_collector_sees_markers(tmp_path: Path) -> None:
    """The collector pairs a marker with the block right after it, and only that block."""
    page = tmp_path / "page.md"
    page.write_text("<!-- runnable -->\n```bash\necho a\n```\n\n```bash\necho b\n```\n"
                    "<!-- runnable: skip needs a GPU -->\n```bash\nnvidia-smi\n```\n```python\nprint(1)\n```\n")
    found = examples(page)
    assert [(e.language, e.marker, e.code) for e in found] == [
        ("bash", "runnable", "echo a\n"), ("bash", None, "echo b\n"), ("bash", "runnable", "nvidia-smi\n"),
        ("python", None, "print(1)\n")]
    assert found[2].skip_reason == "needs a GPU" and found[0].skip_reason is None
    assert PYTHON, "no Python example found in the README and docs"
    assert BASH, "no shell example is marked runnable"
