"""The package's shape, checked: imports flow one way, commands start without torch, small files.

These are the rules the code layout promises (docs/guides/architecture.md): a stage never imports a
stage above it, nothing imports the command layer, and ``--help`` stays fast.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cbam_deploy"
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
HEAVY = ("torch", "onnx", "onnxruntime", "onnxsim", "tritonclient", "openvino")


def _unit(module: str) -> str | None:
    """cbam_deploy.compare.parity -> 'compare'; cbam_deploy.layout -> 'layout'."""
    parts = module.split(".")
    return parts[1] if parts[0] == "cbam_deploy" and len(parts) > 1 else None


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside functions (relative imports resolved)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)  # `from . import x` imports submodule x
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        source = _unit(_module_name(path))
        if source is None:
            continue
        for target in _imports(path):
            unit = _unit(target)
            if unit and unit != source and (PACKAGE / unit).with_suffix(".py").exists() or (
                    unit and unit != source and (PACKAGE / unit).is_dir()):
                graph.setdefault(source, set()).add(unit)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_between_subpackages():
    graph = _graph()
    cycles = _cycles(graph)
    assert not cycles, "import cycles between parts of cbam_deploy: " + "; ".join(" <-> ".join(c) for c in cycles)
    assert graph, "the import graph is empty: the scan found nothing"


def test_nothing_imports_the_command_layer():
    offenders = sorted(source for source, targets in _graph().items() if "cli" in targets and source != "cli")
    assert not offenders, f"these import cbam_deploy.cli: {offenders}"


def test_the_scan_sees_a_known_edge():
    # A control: the scan must find the export orchestrator's use of onnx_export, or the checks above prove nothing.
    assert "onnx_export" in _graph().get("api", set())


def test_files_and_functions_stay_small():
    long_files, long_functions = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        if len(text.splitlines()) > 400:
            long_files.append(f"{path.relative_to(ROOT)} ({len(text.splitlines())} lines)")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 80:
                    long_functions.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    assert not long_files, f"files over 400 lines: {long_files}"
    assert not long_functions, f"functions over 80 lines: {long_functions}"


def test_nothing_cites_documents_outside_the_repository():
    needles = ("shared/", "DESIGN.md", "VARIANTS.md")
    files = [ROOT / "README.md", *PACKAGE.rglob("*.py"), *(ROOT / "docs").rglob("*.md")]
    hits = [f"{p.relative_to(ROOT)}: {n}" for p in files for n in needles if n in p.read_text()]
    assert not hits, hits


_PROBE = """
import json, sys
from importlib.metadata import entry_points
target = sys.argv[1]
module, _, func = target.partition(":")
main = getattr(__import__(module, fromlist=[func]), func)
try:
    main(["--help"])
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {heavy})))
"""


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_imports_neither_torch_nor_onnx(script):
    probe = _PROBE.replace("{heavy}", repr(set(HEAVY)))
    run = subprocess.run([sys.executable, "-c", probe, SCRIPTS[script]], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert "usage:" in run.stdout, f"{script} --help printed no usage"
    heavy = json.loads(lines[-1])
    assert not heavy, f"{script} --help imported {heavy}"


def test_health_check_imports_neither_torch_nor_onnx():
    probe = ("import sys, cbam_deploy.serving.health as h; "
             f"print(sorted(m for m in sys.modules if m.split('.')[0] in {set(HEAVY)!r}))")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]", run.stdout
