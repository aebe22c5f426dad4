"""The Docker HEALTHCHECK: healthy when the toolkit imports and, if ``cbam-serve`` is running in
the container, Triton answers ``/v2/health/ready`` on its HTTP port. Exit 0 healthy, 1 not."""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path


def _serving_port() -> int | None:
    """The --http-port of a running cbam-serve (8000 by default), or None when none runs."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"cbam-serve") for a in args[:2]):
            words = [a.decode(errors="replace") for a in args]
            for i, word in enumerate(words):
                if word == "--http-port" and i + 1 < len(words):
                    return int(words[i + 1])
                if word.startswith("--http-port="):
                    return int(word.split("=", 1)[1])
            return 8000
    return None


def main() -> int:
    import cbam_deploy  # noqa: F401  (the toolkit itself must import)

    port = _serving_port()
    if port is None:
        return 0
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=3) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"Triton on port {port} is not ready: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
