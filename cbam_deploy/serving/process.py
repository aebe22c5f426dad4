"""``cbam-serve`` as a child process, for tests and benchmarks: start it on free loopback ports,
wait until its model is ready, signal it, and prove that nothing is left behind (no child
process, no temporary folder) and what it costs in memory (RSS of its whole process tree)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import CheckFailedError
from ..interrupts import with_default_signals


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports free right now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc; Linux)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Running (a zombie is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and every process below it."""
    total = 0
    for p in {pid, *descendants(pid)}:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


class ServeProcess:
    """``cbam-serve MODEL`` on free loopback ports. ``tmpdir``: its TMPDIR, to check that it leaves
    no temporary folder; ``log``: where its output goes."""

    def __init__(self, model_dir: str | Path, *args: str, log: str | Path | None = None,
                 tmpdir: str | Path | None = None) -> None:
        self.http_port, self.grpc_port, self.metrics_port = free_ports(3)
        self.model_dir = Path(model_dir)
        self.name = self.model_dir.name
        self.args = list(args)
        self.log_path = Path(log) if log else None
        self.tmpdir = Path(tmpdir) if tmpdir else None
        self.process: subprocess.Popen | None = None
        self.children: set[int] = set()

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def url(self, protocol: str) -> str:
        return self.http_url if protocol == "http" else self.grpc_url

    def ready(self) -> bool:
        """The model answers ready on the HTTP endpoint."""
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/models/{self.name}/ready", timeout=2) as r:
                return r.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def start(self, timeout: float = 300.0) -> "ServeProcess":
        """Start and wait until the model is ready (raises CheckFailedError if it exits first)."""
        command = [sys.executable, "-m", "cbam_deploy.cli.serve", str(self.model_dir), "--http-port",
                   str(self.http_port), "--grpc-port", str(self.grpc_port), "--metrics-port", str(self.metrics_port),
                   *self.args]
        env = dict(os.environ)
        if self.tmpdir is not None:
            self.tmpdir.mkdir(parents=True, exist_ok=True)
            env["TMPDIR"] = str(self.tmpdir)
        out = open(self.log_path, "w") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        # SIGINT/SIGHUP/SIGTERM at their defaults even under ``nohup``: tests stop it by signal.
        self.process = subprocess.Popen(with_default_signals(command), stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CheckFailedError(f"cbam-serve exited with {self.process.returncode} before it was ready"
                                       + (f" (log: {self.log_path})" if self.log_path else ""))
            if self.ready():
                self.children = descendants(self.process.pid)
                return self
            time.sleep(0.3)
        self.stop(signal.SIGKILL)
        raise CheckFailedError(f"cbam-serve was not ready within {timeout:.0f}s")

    def send(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` to cbam-serve's own PID (what ``kill`` or ``docker stop`` does)."""
        assert self.process is not None
        self.children |= descendants(self.process.pid)
        if self.process.poll() is None:
            self.process.send_signal(sig)

    def wait(self, timeout: float = 120.0) -> int:
        """The exit code; kills everything and raises if it does not exit within ``timeout``
        (a generous bound that only a hang exceeds, not a limit on a slow machine)."""
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            for pid in (self.process.pid, *self.children):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            raise CheckFailedError(f"cbam-serve did not exit within {timeout:.0f}s of the signal") from None

    def stop(self, sig: int = signal.SIGINT, timeout: float = 120.0) -> int:
        """Signal (Ctrl-C by default) and wait; returns the exit code."""
        self.send(sig)
        return self.wait(timeout)

    def leftover_children(self) -> list[int]:
        """Child processes (tritonserver, the Python stub) still running after the exit."""
        return sorted(pid for pid in self.children if alive(pid))

    def leftover_files(self) -> list[str]:
        """What is left in its TMPDIR (needs ``tmpdir``)."""
        return sorted(p.name for p in self.tmpdir.iterdir()) if self.tmpdir else []

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)

    def __enter__(self) -> "ServeProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop()
