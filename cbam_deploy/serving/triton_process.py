"""The ``tritonserver`` child process of ``cbam-serve``: its files, its start and its stop.

The binary, its Python backend and the Python stub come from the ``nvidia-pytriton`` wheel
(``pytriton/tritonserver``); we run them directly, not through PyTriton's ``Triton`` class, so
that the model is ours (``serving.triton_model``: per-request errors) and so is the stop:

- everything Triton needs lives in one temporary folder (backend links, model repository),
  removed on the way out, whatever happened;
- ``tritonserver`` runs in its own session: Ctrl-C in a terminal reaches ``cbam-serve`` only,
  which stops Triton in order; ``PR_SET_PDEATHSIG`` stops it if ``cbam-serve`` is killed;
- stopping sends SIGTERM: Triton marks itself not ready, finishes in-flight requests (up to
  ``--exit-timeout-secs``), unloads the model (its stub exits) and exits; a straggler is killed.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import ctypes.util
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path
from typing import Sequence

from ..errors import MissingDependencyError

_LOG_PREFIX = re.compile(r"^[IWE]\d{4} [\d:.]+ +\d+ [^\]]*\] ?")

#: What Triton prints at every start on a machine without a usable NVIDIA GPU (no driver, NVML or
#: DCGM). Harmless there: cbam-serve refuses a GPU backend before starting Triton when no GPU is
#: usable, so a CPU backend is serving. Hidden, and explained once (NO_GPU_NOTE); kept in the tail
#: that a failed start reports.
NO_GPU_NOISE = ("Unable to allocate pinned system memory", "CudaDriverHelper has not been initialized",
                "Failed to initialize NVML", "DCGM unable to start")
NO_GPU_NOTE = ("cbam-serve: Triton sees no usable NVIDIA GPU (no CUDA driver, NVML or DCGM): serving on the CPU; "
               "its start-up warnings about that are hidden")


def shown_line(line: str, explained: bool) -> tuple[str | None, bool]:
    """What to print for one line of Triton's output (None: nothing), and whether the no-GPU note
    has now been printed."""
    if any(noise in line for noise in NO_GPU_NOISE):
        return (None, True) if explained else (NO_GPU_NOTE, True)
    return line, explained


def triton_distribution() -> Path:
    """``pytriton/tritonserver`` of the installed nvidia-pytriton wheel (found without importing it)."""
    spec = importlib.util.find_spec("pytriton")
    root = Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None
    if root is None or not (root / "tritonserver" / "bin" / "tritonserver").is_file():
        raise MissingDependencyError("cbam-serve needs the serve extra (the tritonserver that nvidia-pytriton "
                                     "carries): pip install -e '.[serve]' in a clone, or pip install "
                                     "'cbam-deploy[serve]' (Linux, glibc 2.35 or newer)")
    return root / "tritonserver"


def _libs_folder(dist: Path) -> Path:
    """Where the wheel keeps tritonserver's shared libraries (auditwheel's ``nvidia_pytriton.libs``)."""
    for candidate in (dist.parent.parent / "nvidia_pytriton.libs", dist / "external_libs"):
        if candidate.is_dir():
            return candidate
    return dist.parent.parent / "nvidia_pytriton.libs"


def prepare_backends(dist: Path, workspace: Path) -> Path:
    """``workspace/backends/python``: links to the wheel's Python backend and the stub built for this
    interpreter's version (Triton looks for ``triton_python_backend_stub`` beside the backend)."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    stub = dist / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise MissingDependencyError(f"nvidia-pytriton carries no Triton Python stub for Python {version}")
    folder = workspace / "backends" / "python"
    folder.mkdir(parents=True)
    for source in (dist / "backends" / "python").iterdir():
        if source.is_file():
            (folder / source.name).symlink_to(source)
    (folder / "triton_python_backend_stub").symlink_to(stub)
    return folder.parent


def triton_environment(dist: Path, workspace: Path) -> dict[str, str]:
    """The environment for tritonserver and its Python stub. Their TMPDIR is inside ``workspace``,
    so what they leave there (ONNX Runtime writes a telemetry file ``.ses``) goes with it.

    Why: the stub embeds libpython and must load this interpreter's (its LIBDIR first on
    LD_LIBRARY_PATH; Debian's own fails with "'_thread.RLock' object has no attribute
    '_recursion_count'"), and finds its prefix, so our packages, through ``python3`` on PATH."""
    env = dict(os.environ)
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    paths = [libdir, str(_libs_folder(dist)), *env.get("LD_LIBRARY_PATH", "").split(os.pathsep)]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(dict.fromkeys(p for p in paths if p))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["TMPDIR"] = str(workspace / "tmp")
    return env


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: cbam-serve killed -> Triton stops


class TritonProcess:
    """One running ``tritonserver``; its output is copied to our stderr and its tail kept."""

    def __init__(self, command: Sequence[str], env: dict[str, str], shm_prefix: str) -> None:
        self.shm_prefix = shm_prefix
        self.tail: collections.deque[str] = collections.deque(maxlen=60)
        self.process = subprocess.Popen(list(command), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        preexec_fn=_die_with_parent)
        self._pump = threading.Thread(target=self._copy_output, name="tritonserver-log", daemon=True)
        self._pump.start()

    def _copy_output(self) -> None:
        assert self.process.stdout is not None
        explained = False
        for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.tail.append(line)
            shown, explained = shown_line(line, explained)
            if shown is None:
                continue
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write(shown + "\n")
                sys.stderr.flush()

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def reason(self) -> str:
        """The most telling line of Triton's output (its last error), without the log prefix."""
        self._pump.join(timeout=2)
        lines = list(self.tail)
        for line in reversed(lines):
            if line.startswith("E") and _LOG_PREFIX.match(line):
                return _LOG_PREFIX.sub("", line).strip().strip('"').strip()
        return lines[-1].strip() if lines else "no output"

    def stop(self, grace: float) -> bool:
        """SIGTERM, wait ``grace`` seconds, then SIGKILL what is left of its session; True when
        Triton stopped by itself."""
        clean = True
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                clean = False
        self.kill()
        return clean

    def kill_now(self) -> None:
        """SIGKILL tritonserver's whole session (its stub included); safe in a signal handler."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def kill(self) -> None:
        """``kill_now``, reap, and free what they held."""
        self.kill_now()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        self._pump.join(timeout=2)
        if self.process.stdout is not None:
            with contextlib.suppress(OSError):
                self.process.stdout.close()
        # The Python backend's shared-memory regions are named after our prefix: a killed stub leaves them.
        for region in Path("/dev/shm").glob(f"{self.shm_prefix}*"):
            with contextlib.suppress(OSError):
                region.unlink()


@contextlib.contextmanager
def workspace_folder():
    """A temporary folder for Triton's files, removed on the way out."""
    folder = Path(tempfile.mkdtemp(prefix="cbam-serve-"))
    try:
        (folder / "tmp").mkdir()  # TMPDIR of Triton, its stub and the backend probe
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
