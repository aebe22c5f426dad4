"""cbam-serve: a real Triton Inference Server (PyTriton) on loopback. 8 concurrent clients x 100
requests with mixed batch sizes over HTTP and gRPC, every answer checked against eager; malformed
requests get error responses and the server keeps serving; Ctrl-C leaves no process behind."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("pytriton", reason="cbam-serve needs nvidia-pytriton (pip install 'cbam-deploy[serve]')")

from cbam_deploy.compare import tolerance_for  # noqa: E402
from cbam_deploy.model_dir import ExportedModel  # noqa: E402
from cbam_deploy.serving.load_test import ServeProcess, infer_once, run_load  # noqa: E402

TOLERANCE = tolerance_for("fp32").max_scaled_error


def scaled_error_check(got: np.ndarray, want: np.ndarray) -> str | None:
    if got.shape != want.shape:
        return f"shape {got.shape} != {want.shape}"
    error = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))
    return None if error <= TOLERANCE else f"scaled error {error:.2e} > {TOLERANCE:g}"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from cbam_deploy.cli.export import main as export_main

    out = tmp_path_factory.mktemp("serve")
    assert export_main(["--out", str(out / "models")]) == 0  # the trained reference model
    model_dir = out / "models" / "original_resnet_mini"
    server = ServeProcess(model_dir, "--threads", "1", log=out / "serve.log").start()
    yield server, ExportedModel.open(model_dir)
    if server.process.poll() is None:
        server.stop()


@pytest.fixture(scope="module")
def pool(served):
    _, model = served
    x = np.random.default_rng(0).standard_normal((32, 3, 64, 64)).astype(np.float32)
    eager = model.eager_model()
    with torch.no_grad():
        logits = eager(torch.from_numpy(x)).numpy()
    return {"input": x}, {"logits": logits}


@pytest.mark.xdist_group("serve")
def test_concurrent_clients_get_eager_answers(served, pool):
    server, model = served
    inputs, expected = pool
    results = [run_load(url, model.name, pool=inputs, expected=expected, check=scaled_error_check, clients=4,
                        requests_per_client=100, batch_sizes=(1, 2, 3, 4), protocol=protocol)
               for url, protocol in ((server.http_url, "http"), (server.grpc_url, "grpc"))]
    for r in results:
        assert r.errors == [] and r.mismatches == [], (r.errors[:3], r.mismatches[:3])
        assert len(r.latencies) == 400 and r.images == 4 * (1 + 2 + 3 + 4) * 25


@pytest.mark.xdist_group("serve")
def test_eight_clients_at_once(served, pool):
    server, model = served
    inputs, expected = pool
    r = run_load(server.http_url, model.name, pool=inputs, expected=expected, check=scaled_error_check, clients=8,
                 requests_per_client=100, batch_sizes=(1, 4, 2), protocol="http")
    assert r.errors == [] and r.mismatches == [] and len(r.latencies) == 800


@pytest.mark.xdist_group("serve")
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_malformed_requests_get_errors_and_the_server_keeps_serving(served, pool, protocol):
    from tritonclient.utils import InferenceServerException

    server, model = served
    url = server.http_url if protocol == "http" else server.grpc_url
    inputs, expected = pool
    good = inputs["input"][:2]
    bad_requests = {
        "wrong shape": {"input": np.zeros((2, 3, 32, 64), np.float32)},
        "wrong channels": {"input": np.zeros((2, 4, 64, 64), np.float32)},
        "wrong dtype": {"input": good.astype(np.float64)},
        "wrong input name": {"image": good},
        "too large a batch": {"input": np.zeros((9, 3, 64, 64), np.float32)},
        "not finite": {"input": np.full((1, 3, 64, 64), np.nan, np.float32)},
    }
    for label, feed in bad_requests.items():
        with pytest.raises(InferenceServerException):
            infer_once(protocol, url, model.name, feed, ["logits"])
        # still serving, and still right
        got = infer_once(protocol, url, model.name, {"input": good}, ["logits"])["logits"]
        assert scaled_error_check(got, expected["logits"][:2]) is None, label


@pytest.mark.xdist_group("serve")
def test_ctrl_c_stops_cleanly_leaving_no_process(served):
    server, _ = served
    assert server.children, "Triton's child processes were not seen"
    assert server.stop() == 0
    assert server.leftover_children() == []
