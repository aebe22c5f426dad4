"""Reference-model exports (resnet_mini, trained weights) of every variant, shared by the OpenVINO tests."""

from __future__ import annotations

import pytest

from cbam_deploy.models import list_variants

pytest.importorskip("openvino", reason="the openvino extra is not installed")


@pytest.fixture(scope="session")
def mini_export(tmp_path_factory):
    """variant -> exported reference model folder (dynamic batch)."""
    from cbam_deploy.cli.export import main as export_main

    root = tmp_path_factory.mktemp("ov_models")
    cache: dict[str, object] = {}

    def get(variant: str):
        if variant not in cache:
            assert export_main(["--variant", variant, "--out", str(root), "--name", variant]) == 0
            cache[variant] = root / variant
        return cache[variant]

    return get


VARIANTS = list_variants()
