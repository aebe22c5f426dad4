"""cbam-serve: a real Triton Inference Server on loopback, tritonclient clients. Concurrent clients
over HTTP and gRPC with malformed requests mixed in: every good answer equals eager, every
malformed request gets its own one-line 400 / INVALID_ARGUMENT; Ctrl-C stops it cleanly."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest

pytest.importorskip("pytriton", reason="cbam-serve needs nvidia-pytriton (pip install 'cbam-deploy[serve]')")

from cbam_deploy.serving.load_test import MALFORMED_KINDS, REFUSED, infer_once, malformed_feed, run_load  # noqa: E402

from .conftest import start_server, stop_and_check_nothing_left  # noqa: E402

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def served(reference_model, tmp_path_factory):
    server = start_server(reference_model, tmp_path_factory.mktemp("serve"))
    yield server
    if server.process.poll() is None:
        server.stop(signal.SIGKILL)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_concurrent_clients_with_malformed_requests_mixed_in(served, pool, protocol):
    inputs, expected = pool
    r = run_load(served.url(protocol), served.name, pool=inputs, expected=expected, tolerance=TOLERANCE, clients=8,
                 requests_per_client=40, batch_sizes=(1, 2, 3, 4), protocol=protocol, malformed_share=0.3, seed=3)
    assert r.errors == [] and r.mismatches == [], (r.errors[:3], r.mismatches[:3])
    assert r.accepted == [] and r.tracebacks == 0
    assert r.malformed > 0 and len(r.latencies) + r.malformed == 320
    # Triton's own HTTP JSON parser answers an unreadable body with a 500; everything else is a 400.
    allowed = {"garbage_body/500"} if protocol == "http" else set()
    assert set(r.refused_otherwise) <= allowed, r.statuses


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("kind", [k for k in MALFORMED_KINDS if k != "garbage_body"])
def test_each_malformed_request_gets_its_own_one_line_400(served, pool, protocol, kind):
    from tritonclient.utils import InferenceServerException

    inputs, expected = pool
    url = served.url(protocol)
    good = {"input": inputs["input"][:2]}
    with pytest.raises(InferenceServerException) as caught:
        infer_once(protocol, url, served.name, malformed_feed(kind, good, 8), ["logits"])
    assert str(caught.value.status()) == REFUSED[protocol]
    message = caught.value.message()
    assert "\n" not in message and "Traceback" not in message
    if kind == "nan":
        assert message == "input 'input': 1 NaN value at [1, 0, 0, 0]"  # malformed_feed's NaN: the middle element
    got = infer_once(protocol, url, served.name, good, ["logits"])["logits"]  # still serving, still right
    np.testing.assert_allclose(got, expected["logits"][:2], rtol=0, atol=TOLERANCE * np.abs(expected["logits"]).max())


def test_one_log_line_per_rejection_and_no_traceback(served, pool):
    from tritonclient.utils import InferenceServerException

    log = served.log_path
    before = log.read_text().count("rejected a request:")
    bad = malformed_feed("nan", {"input": pool[0]["input"][:1]}, 8)
    for _ in range(3):
        with pytest.raises(InferenceServerException):
            infer_once("http", served.http_url, served.name, bad, ["logits"])
    # Triton writes its log asynchronously: wait for the lines (a bound on a hang, not a timing margin).
    deadline = time.monotonic() + 60
    while log.read_text().count("rejected a request:") - before < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    text = log.read_text()
    assert text.count("rejected a request:") - before == 3
    assert "Traceback" not in text


def test_ctrl_c_stops_cleanly_leaving_nothing(served):
    assert served.children, "Triton's child processes were not seen"
    assert stop_and_check_nothing_left(served, signal.SIGINT) == 0
    assert "cbam-serve: stopped" in served.log_path.read_text()


def test_triton_no_gpu_start_up_noise_is_one_explained_line(served):
    """On a machine without a usable GPU, Triton's warnings about pinned memory, the CUDA driver,
    NVML and DCGM are replaced by one line saying what they mean."""
    from cbam_deploy.serving.triton_process import NO_GPU_NOISE, NO_GPU_NOTE

    from ..conftest import _has_gpu

    # The "serving" line is printed once cbam-serve has seen the model ready; the fixture may see
    # readiness over HTTP a moment earlier: wait for the line (bounded), then read the whole log.
    deadline = time.monotonic() + 60
    while "cbam-serve: serving " not in served.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    lines = served.log_path.read_text().splitlines()
    assert not [line for line in lines if any(noise in line for noise in NO_GPU_NOISE)], lines
    assert lines.count(NO_GPU_NOTE) == (0 if _has_gpu() else 1), lines
    assert any(line.startswith("cbam-serve: serving ") for line in lines), lines
