"""TensorRT without TensorRT: profile derivation, the plan sidecar and its mismatch checks, and the
one-line refusal of cbam-build where TensorRT or a GPU is missing. GPU tests are marked."""

from __future__ import annotations

import pytest

from cbam_deploy.backends.tensorrt import PlanSidecar, check_compatible, derive_profile, parse_shape_spec, read_sidecar, write_sidecar
from cbam_deploy.cli.build import main as build_main
from cbam_deploy.errors import UsageError

def _gpu_here() -> bool:
    from cbam_deploy.backends.cuda_runtime import probe

    return bool(probe().gpus)


INPUTS = [{"name": "input", "dtype": "float32", "shape": ["batch", 3, "height", "width"]}]


def test_default_profile_from_dynamic_axes_and_traced_shape():
    p = derive_profile(INPUTS, traced_shapes={"input": [1, 3, 64, 64]})
    assert p.shapes["input"] == ((1, 3, 32, 32), (1, 3, 64, 64), (32, 3, 128, 128))


def test_fixed_axes_stay_fixed():
    p = derive_profile([{"name": "input", "shape": ["batch", 3, 224, 224]}], traced_shapes={"input": [2, 3, 224, 224]}, max_batch=8)
    assert p.shapes["input"] == ((1, 3, 224, 224), (2, 3, 224, 224), (8, 3, 224, 224))
    assert p.contains("input", (4, 3, 224, 224)) and not p.contains("input", (9, 3, 224, 224))


def test_user_shapes_override_and_are_checked():
    shapes = parse_shape_spec("input:4x3x96x96", ["input"])
    p = derive_profile(INPUTS, traced_shapes={"input": [1, 3, 64, 64]}, opt_shapes=shapes)
    assert p.shapes["input"][1] == (4, 3, 96, 96)
    with pytest.raises(UsageError, match="axis 1 is fixed at 3"):
        derive_profile(INPUTS, min_shapes=parse_shape_spec("1x4x64x64", ["input"]))
    with pytest.raises(UsageError, match="min <= opt <= max"):
        derive_profile(INPUTS, traced_shapes={"input": [1, 3, 64, 64]}, max_shapes=parse_shape_spec("1x3x32x32", ["input"]))
    with pytest.raises(UsageError, match="unknown input 'image'"):
        parse_shape_spec("image:1x3x64x64", ["input"])


def sidecar(**overrides) -> PlanSidecar:
    values = dict(tensorrt_version="10.13.2.6", gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0",
                  precision="fp16", profiles=[{"input": {"min": [1, 3, 32, 32], "opt": [1, 3, 64, 64], "max": [32, 3, 128, 128]}}],
                  onnx_sha256="ab" * 32, plan_sha256="cd" * 32, build_seconds=12.5)
    return PlanSidecar(**(values | overrides))


def test_sidecar_round_trips_beside_a_plain_plan(tmp_path):
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"\x00plan bytes")
    write_sidecar(plan, sidecar())
    assert plan.read_bytes() == b"\x00plan bytes"  # nothing of ours in the plan
    assert read_sidecar(plan) == sidecar()
    assert (tmp_path / "model.plan.json").is_file()


def test_matching_environment_is_accepted_patch_versions_differ():
    check_compatible(sidecar(), tensorrt_version="10.13.3.9", gpu_name="NVIDIA H100 PCIe", compute_capability="9.0")


@pytest.mark.parametrize("env, message", [
    (dict(tensorrt_version="11.0.0.1", gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0"),
     "built with TensorRT 10.13.2.6, this is TensorRT 11.0.0.1"),
    (dict(tensorrt_version="10.13.2.6", gpu_name="NVIDIA A100-SXM4-80GB", compute_capability="8.0"),
     r"built for NVIDIA H100 80GB HBM3 \(compute capability 9.0\), this GPU is NVIDIA A100-SXM4-80GB \(8.0\)"),
])
def test_mismatch_is_refused_saying_what_was_built_where(env, message):
    with pytest.raises(UsageError, match=message) as err:
        check_compatible(sidecar(), **env)
    assert "rebuild it here with cbam-build" in str(err.value)


def test_missing_or_foreign_sidecar_is_a_clear_error(tmp_path):
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"x")
    with pytest.raises(UsageError, match="no sidecar"):
        read_sidecar(plan)
    (tmp_path / "model.plan.json").write_text('{"hello": 1}')
    with pytest.raises(UsageError, match="not a cbam-deploy plan sidecar"):
        read_sidecar(plan)


@pytest.fixture(scope="module")
def exported_model(tmp_path_factory):
    from cbam_deploy.cli.export import main as export_main

    out = tmp_path_factory.mktemp("models")
    assert export_main(["--arch", "cbam", "--variant", "original", "--input-shape", "1x32x8x8", "--out", str(out)]) == 0
    return out / "original_cbam"


@pytest.mark.skipif(_gpu_here(), reason="checks the refusal on machines without a GPU")
def test_cbam_build_without_gpu_or_tensorrt_is_one_line_exit_3(exported_model, tmp_path, capsys):
    code = build_main([str(exported_model), "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3  # the environment's fault (errors.EXIT_ENVIRONMENT)
    assert len(err) == 1 and err[0].startswith("cbam-build: error: TensorRT needs an NVIDIA GPU")
    assert list(tmp_path.iterdir()) == []


def test_cbam_build_bad_profile_is_usage_error(exported_model, tmp_path, capsys):
    code = build_main([str(exported_model), "--out", str(tmp_path), "--min-shape", "1x3x8x8"])
    assert code == 2 and "axis 1 is fixed at 32" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_build_and_run_engine_matches_eager(tmp_path, precision, capsys):
    """Runs in the GPU image: export, build a plan, load it, parity against eager."""
    import json

    from cbam_deploy.cli.export import main as export_main

    args = ["--variant", "dual_bn", "--out", str(tmp_path), "--precision", precision, "--dynamic", "all"]
    if precision == "int8":
        args += ["--calibration", "reference"]
    assert export_main(args) == 0
    name = "dual_bn_resnet_mini" + ("" if precision == "fp32" else f"_{precision}")
    capsys.readouterr()
    assert build_main([str(tmp_path / name), "--out", str(tmp_path), "--json", "--timing-cache", str(tmp_path / "cache")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["parity"]["passed"]
    assert (tmp_path / "cache").is_file()
    assert read_sidecar(tmp_path / f"{name}_trt" / "1" / "model.plan").precision == precision
