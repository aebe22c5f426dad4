"""What the cbam-serve tests share: the trained reference model exported once per worker, a pool
of inputs with their eager answers, and a server started per test module (one per worker that runs tests of that module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cbam_deploy.serving.process import ServeProcess


@pytest.fixture(scope="session")
def reference_model(tmp_path_factory) -> Path:
    from cbam_deploy.cli.export import main as export_main

    out = tmp_path_factory.mktemp("serve_model")
    assert export_main(["--out", str(out / "models")]) == 0  # the trained reference model
    return out / "models" / "original_resnet_mini"


@pytest.fixture(scope="session")
def pool(reference_model):
    """32 inputs and the eager model's logits for them."""
    import torch

    from cbam_deploy.model_dir import ExportedModel

    x = np.random.default_rng(0).standard_normal((32, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        logits = ExportedModel.open(reference_model).eager_model()(torch.from_numpy(x)).numpy()
    return {"input": x}, {"logits": logits}


def start_server(model_dir: Path, folder: Path, *args: str) -> ServeProcess:
    """cbam-serve on free ports, its TMPDIR and log under ``folder`` (to check what it leaves)."""
    return ServeProcess(model_dir, "--threads", "1", *args, log=folder / "serve.log", tmpdir=folder / "tmp").start()


def stop_and_check_nothing_left(server: ServeProcess, sig: int | None) -> int:
    """Signal the PID (``None``: already signalled), wait for the exit; no child process and no
    temporary file may remain."""
    if sig is not None:
        server.send(sig)
    code = server.wait()
    assert server.leftover_children() == [], "Triton or its stub outlived cbam-serve"
    assert server.leftover_files() == [], "cbam-serve left temporary files behind"
    return code
