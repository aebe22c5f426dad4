"""A second signal while cbam-serve is stopping (a request still queued) forces the exit at once:
exit 143 for SIGTERM, and still no child process and no temporary file left."""

from __future__ import annotations

import signal
import threading

import pytest

pytest.importorskip("pytriton", reason="cbam-serve needs nvidia-pytriton (pip install 'cbam-deploy[serve]')")

from .conftest import start_server, stop_and_check_nothing_left  # noqa: E402
from .test_batching import HANG, _pending, _ready, _send_together  # noqa: E402


def test_second_sigterm_forces_the_exit(reference_model, pool, tmp_path):
    import time

    # A lone request waits 60 s in the queue: the orderly stop cannot finish before the second signal.
    server = start_server(reference_model, tmp_path, "--max-batch-size", "2", "--max-queue-delay-us", "60000000",
                          "--exit-timeout", "60")
    try:
        sender = threading.Thread(target=_send_together, args=(server, [{"input": pool[0]["input"][:1]}]), daemon=True)
        sender.start()
        deadline = time.monotonic() + HANG
        while _pending(server) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        server.send(signal.SIGTERM)
        # The kernel merges two SIGTERMs that arrive before the first is handled: send the second once
        # the first has visibly been acted on (Triton no longer ready).
        while _ready(server) is True and time.monotonic() < deadline:
            time.sleep(0.02)
        server.send(signal.SIGTERM)
        assert stop_and_check_nothing_left(server, None) == 143
        assert "Traceback" not in server.log_path.read_text()
    finally:
        if server.process.poll() is None:
            server.stop(signal.SIGKILL)
