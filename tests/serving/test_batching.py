"""One batch holding a good request and a NaN request (forced: batches of 2, a long queue delay):
the good one is answered correctly, the NaN one alone gets a 400. Then SIGTERM to cbam-serve's
PID while a request waits in Triton's queue: readiness goes false, the request is still answered,
exit 0, no child process, no temporary file."""

from __future__ import annotations

import signal
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

pytest.importorskip("pytriton", reason="cbam-serve needs nvidia-pytriton (pip install 'cbam-deploy[serve]')")

from cbam_deploy.serving.load_test import infer_once  # noqa: E402

from .conftest import start_server, stop_and_check_nothing_left  # noqa: E402

QUEUE_DELAY_US = 3_000_000  # a lone request waits this long for a partner: pairs always meet
HANG = 120  # seconds: a bound on a hang, not a timing margin


@pytest.fixture(scope="module")
def served(reference_model, tmp_path_factory):
    server = start_server(reference_model, tmp_path_factory.mktemp("serve_batch"), "--max-batch-size", "2",
                          "--max-queue-delay-us", str(QUEUE_DELAY_US))
    yield server
    if server.process.poll() is None:
        server.stop(signal.SIGKILL)


def _executions(server) -> int:
    import tritonclient.http as http

    stats = http.InferenceServerClient(server.http_url).get_inference_statistics(server.name)
    return int(stats["model_stats"][0]["execution_count"])


def _send_together(server, feeds):
    """Send the feeds at the same moment from one thread each; (outputs or exception) per feed."""
    gate = threading.Barrier(len(feeds))
    answers: list[object] = [None] * len(feeds)

    def send(i: int) -> None:
        gate.wait()
        try:
            answers[i] = infer_once("http", server.http_url, server.name, feeds[i], ["logits"])
        except Exception as exc:  # the NaN request's expected 400
            answers[i] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(feeds))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HANG)
    return answers


def test_a_good_request_sharing_a_batch_with_a_nan_request_succeeds(served, pool):
    from tritonclient.utils import InferenceServerException

    inputs, expected = pool
    good = {"input": inputs["input"][3:4]}
    bad = {"input": inputs["input"][5:6].copy()}
    bad["input"][0, 2, 10, 20] = np.nan
    before = _executions(served)
    answer, rejection = _send_together(served, [good, bad])
    # One execution ran both: they shared a batch, and the rejection came from inside it.
    assert _executions(served) - before == 1
    assert isinstance(rejection, InferenceServerException) and rejection.status() == "400"
    assert rejection.message() == "input 'input': 1 NaN value at [0, 2, 10, 20]"
    assert isinstance(answer, dict), answer
    np.testing.assert_allclose(answer["logits"], expected["logits"][3:4], rtol=0,
                               atol=1e-4 * np.abs(expected["logits"]).max())


def _ready(server) -> bool | None:
    """True ready, False not ready, None not listening."""
    try:
        with urllib.request.urlopen(f"http://{server.http_url}/v2/health/ready", timeout=5) as r:
            return r.status == 200
    except urllib.error.HTTPError:
        return False
    except OSError:
        return None


def _pending(server) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("nv_inference_pending_request_count"))


def test_sigterm_lets_the_queued_request_finish_then_exits_0(served, pool):
    inputs, expected = pool
    answers: list[object] = []
    thread = threading.Thread(target=lambda: answers.extend(_send_together(served, [{"input": inputs["input"][:1]}])))
    thread.start()
    deadline = time.monotonic() + HANG
    while _pending(served) < 1 and time.monotonic() < deadline:  # it waits in the queue for a partner
        time.sleep(0.02)
    served.send(signal.SIGTERM)
    seen = []
    while thread.is_alive() and len(seen) < 10_000:
        seen.append(_ready(served))
        time.sleep(0.02)
    thread.join(HANG)
    # Once told, Triton stops being ready (while exiting it refuses new connections: None) before the
    # queued request is answered, and never becomes ready again.
    not_ready = [i for i, state in enumerate(seen) if state is not True]
    assert not_ready and True not in seen[not_ready[0]:], seen[:20]
    assert isinstance(answers[0], dict), answers
    np.testing.assert_allclose(answers[0]["logits"], expected["logits"][:1], rtol=0,
                               atol=1e-4 * np.abs(expected["logits"]).max())
    assert stop_and_check_nothing_left(served, None) == 0
