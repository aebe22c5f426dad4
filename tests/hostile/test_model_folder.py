"""Hostile model folders: code named in metadata, corrupted or swapped files, NaN weights.

A model folder is data. Without --trust-model-code no command imports the factory its metadata
names (the marker file it would write never appears); a model.onnx that does not match export.json's
SHA-256 is refused (exit 1) unless --no-verify; NaN/Inf outputs are an error, never an answer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cbam_deploy.errors import IntegrityError, UntrustedCodeError, UsageError
from cbam_deploy.model_dir import ExportedModel

from .conftest import Evil, assert_refused, clone, debris, reseal, run_cli, snapshot

FAST_BENCH = ("--runs", "1", "--warmup", "0", "--batch-sizes", "1")


# --- code named in the metadata -------------------------------------------------------------------

@pytest.mark.parametrize("command, extra", [
    ("cbam-validate", ("--backends", "onnxruntime-cpu", "--precisions", "fp32")),
    ("cbam-bench", FAST_BENCH),
    ("cbam-infer", ("--backend", "eager")),
])
def test_untrusted_factory_is_never_imported(capfd, evil: Evil, batch: Path, command: str, extra: tuple[str, ...]):
    before = snapshot(evil.folder)
    args = (evil.folder, batch, *extra) if command == "cbam-infer" else (evil.folder, *extra)
    line = assert_refused(run_cli(capfd, command, *args), command, 2, evil.factory, "--trust-model-code")
    assert "\n" not in line
    assert not evil.marker.exists()
    assert snapshot(evil.folder) == before and not debris(evil.folder.parent)


def test_untrusted_folder_still_runs_where_no_eager_model_is_needed(capfd, evil: Evil, batch: Path):
    """ONNX Runtime alone needs no code: cbam-infer and cbam-bench --no-eager run, and import nothing."""
    result = run_cli(capfd, "cbam-infer", evil.folder, batch, "--json")
    assert result.code == 0, result.err
    assert len(json.loads(result.out)["results"]) == 2
    result = run_cli(capfd, "cbam-bench", evil.folder, "--no-eager", *FAST_BENCH)
    assert result.code == 0, result.err
    assert not evil.marker.exists()


def test_attention_map_needs_the_eager_model_so_it_needs_trust(capfd, evil: Evil, workspace: Path):
    from PIL import Image

    image = workspace / "plain.png"
    Image.new("RGB", (32, 32), (10, 200, 30)).save(image)
    out = workspace / "attention.png"
    result = run_cli(capfd, "cbam-infer", evil.folder, image, "--attention-map", out)
    assert_refused(result, "cbam-infer", 2, "--trust-model-code")
    assert not out.exists() and not evil.marker.exists()


@pytest.mark.parametrize("factory", ["os:system", "subprocess:run", "builtins:exec"])
def test_metadata_naming_a_stdlib_callable_is_refused_by_name(capfd, exported: Path, factory: str):
    import onnx

    folder = clone(exported, f"names_{factory.replace(':', '_')}")
    proto = onnx.load(str(folder / "1" / "model.onnx"))
    proto.metadata_props.add(key="cbam_deploy.user_model", value=json.dumps({"factory": factory, "kwargs": {}}))
    reseal(folder, proto)
    assert_refused(run_cli(capfd, "cbam-validate", folder, "--backends", "onnxruntime-cpu", "--precisions", "fp32"),
                   "cbam-validate", 2, repr(factory))


def test_api_open_does_not_trust_by_default(evil: Evil):
    model = ExportedModel.open(evil.folder)
    assert model.needs_trust and model.model_code == evil.factory
    with pytest.raises(UntrustedCodeError, match="trust_model_code=True"):
        model.eager_model()
    with pytest.raises(UntrustedCodeError):
        model.eager_runner()
    assert not evil.marker.exists()


def test_api_validate_and_benchmark_do_not_trust_by_default(evil: Evil):
    from cbam_deploy.api.bench import benchmark
    from cbam_deploy.api.validate import validate

    with pytest.raises(UntrustedCodeError):
        validate(evil.folder, precisions=("fp32",), backends=("onnxruntime-cpu",))
    with pytest.raises(UntrustedCodeError):
        benchmark(evil.folder, runs=1, warmup=0, batch_sizes=(1,))
    assert not evil.marker.exists()


def test_trust_is_the_only_gate(evil: Evil, tmp_path: Path):
    """With trust_model_code=True the factory is imported (the marker appears): the refusal above was
    the trust decision, not an accident. Runs last in this module's order of fixtures' use."""
    import shutil

    marker_before = evil.marker.exists()
    model = ExportedModel.open(evil.folder, trust_model_code=True)
    assert not model.needs_trust
    with pytest.raises(BaseException):  # the payload's factory raises SystemExit(9) after writing the marker
        model.eager_model()
    assert evil.marker.exists() and not marker_before
    evil.marker.unlink()
    shutil.rmtree(tmp_path, ignore_errors=True)


# --- integrity: SHA-256 of model.onnx against export.json ----------------------------------------------

@pytest.mark.parametrize("command, extra", [
    ("cbam-infer", ()),
    ("cbam-validate", ("--backends", "onnxruntime-cpu", "--precisions", "fp32")),
    ("cbam-bench", ("--no-eager", *FAST_BENCH)),
    ("cbam-evaluate", ()),
])
def test_corrupted_weights_fail_the_sha256_check(capfd, nan_model: Path, batch: Path, command: str,
                                                 extra: tuple[str, ...]):
    args = (nan_model, batch, *extra) if command == "cbam-infer" else (nan_model, *extra)
    result = run_cli(capfd, command, *args)
    assert_refused(result, command, 1, "SHA-256", "--no-verify")
    assert result.out == ""


@pytest.mark.parametrize("json_flag", [(), ("--json",)])
def test_nan_outputs_are_an_error_even_unverified(capfd, nan_model: Path, batch: Path, json_flag: tuple[str, ...]):
    result = run_cli(capfd, "cbam-infer", nan_model, batch, "--no-verify", *json_flag)
    assert_refused(result, "cbam-infer", 1, "NaN")
    assert result.out == ""  # no half-printed (or invalid) JSON


def test_nan_outputs_fail_the_benchmark(capfd, nan_model: Path):
    assert_refused(run_cli(capfd, "cbam-bench", nan_model, "--no-verify", "--no-eager", *FAST_BENCH),
                   "cbam-bench", 1, "NaN")


def test_api_open_checks_the_sha256(nan_model: Path):
    with pytest.raises(IntegrityError, match="SHA-256"):
        ExportedModel.open(nan_model)
    assert ExportedModel.open(nan_model, verify=False).integrity.startswith("skipped")


def test_good_folder_is_verified(exported: Path):
    assert ExportedModel.open(exported).integrity == "sha256 verified"


@pytest.mark.parametrize("damage, code, needle", [
    ("truncate", 1, "SHA-256"),
    ("text", 1, "SHA-256"),
    ("report_not_json", 1, "export report"),
    ("report_without_sha", 1, "records no SHA-256"),
    ("no_onnx", 2, "not an exported model"),
])
def test_damaged_folders(capfd, exported: Path, batch: Path, damage: str, code: int, needle: str):
    folder = clone(exported, f"damaged_{damage}")
    onnx_file, report = folder / "1" / "model.onnx", folder / "export.json"
    if damage == "truncate":
        onnx_file.write_bytes(onnx_file.read_bytes()[:1000])
    elif damage == "text":
        onnx_file.write_text("this is not a model\n")
    elif damage == "report_not_json":
        report.write_text("{not json")
    elif damage == "report_without_sha":
        report.write_text(json.dumps({"name": "x"}))
    else:
        onnx_file.unlink()
    assert_refused(run_cli(capfd, "cbam-infer", folder, batch), "cbam-infer", code, needle)


@pytest.mark.parametrize("content", [b"", b"this is not a model\n", bytes(range(256)) * 8])
def test_unverified_garbage_is_not_an_onnx_model(capfd, exported: Path, batch: Path, content: bytes):
    folder = clone(exported, f"garbage_{len(content)}")
    (folder / "1" / "model.onnx").write_bytes(content)
    assert_refused(run_cli(capfd, "cbam-infer", folder, batch, "--no-verify"), "cbam-infer", 2, "ONNX")
    with pytest.raises(UsageError):
        ExportedModel.open(folder, verify=False)


def test_bad_model_spec_in_metadata_is_a_usage_error(exported: Path):
    import onnx

    folder = clone(exported, "bad_spec")
    proto = onnx.load(str(folder / "1" / "model.onnx"))
    for prop in proto.metadata_props:
        if prop.key == "cbam_deploy.model_spec":
            prop.value = json.dumps({"arch": "resnet_mini", "no_such_field": 1})
    reseal(folder, proto)
    with pytest.raises(UsageError, match="model spec"):
        ExportedModel.open(folder).eager_model()


@pytest.mark.parametrize("key, value, needle", [
    ("preprocessing", {"mean": [0.5] * 3, "std": [0.0] * 3, "input_size": [32, 32]}, "std"),
    ("preprocessing", {"mean": [0.5] * 3, "std": [0.2] * 3, "input_size": [200000, 200000]}, "input_size"),
    ("preprocessing", {"mean": [0.5] * 3, "std": [0.2] * 3, "input_size": [0, 32]}, "input_size"),
    ("preprocessing", {"mean": ["a", "b", "c"], "std": [0.2] * 3, "input_size": [32, 32]}, "mean"),
    ("preprocessing", {"mean": [0.5, 0.5], "std": [0.2, 0.2], "input_size": [32, 32]}, "mean"),
    ("preprocessing", "resize to 32", "preprocessing"),
    ("classes", {"0": "cat"}, "classes"),
    ("input_shapes", [[1, 3, -32, 32]], "input_shapes"),
])
def test_hostile_metadata_values_are_refused_by_name(capfd, exported: Path, workspace: Path, batch: Path, key: str,
                                                     value, needle: str):
    """Metadata is data from the folder: a zero std, a 200000-pixel side or a malformed entry is one line."""
    import onnx
    from PIL import Image

    folder = clone(exported, f"meta_{key}_{abs(hash(json.dumps(value))) % 10**8}")
    proto = onnx.load(str(folder / "1" / "model.onnx"))
    for prop in proto.metadata_props:
        if prop.key == f"cbam_deploy.{key}":
            prop.value = json.dumps(value)
    reseal(folder, proto)
    image = workspace / "meta.png"
    Image.new("RGB", (32, 32), (1, 2, 3)).save(image)
    given = batch if key == "input_shapes" else image
    assert_refused(run_cli(capfd, "cbam-infer", folder, given), "cbam-infer", 2, needle)
