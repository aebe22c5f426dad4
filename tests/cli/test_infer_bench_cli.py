"""cbam-infer (right classes, attention maps on the object, one-line errors) and cbam-bench."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cbam_deploy.attention_maps import spatial_gates
from cbam_deploy.cli.bench import main as bench_main
from cbam_deploy.cli.dataset import main as dataset_main
from cbam_deploy.cli.export import main as export_main
from cbam_deploy.cli.infer import main as infer_main
from cbam_deploy.models.spec import ModelSpec, build_model
from cbam_deploy.reference.dataset import sample_at
from cbam_deploy.reference.dataset import to_tensor_batch


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("infer")
    assert export_main(["--variant", "original", "--out", str(root / "models")]) == 0
    assert dataset_main([str(root / "images"), "--count", "10"]) == 0
    return root / "models" / "original_resnet_mini", root / "images"


def test_infer_prints_the_right_classes(setup, capsys):
    model, images = setup
    files = sorted(images.glob("*.png"))
    capsys.readouterr()
    assert infer_main([str(model), *map(str, files), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    correct = sum(r["top_k"][0]["class"] == r["input"].rsplit("_", 1)[1].removesuffix(".png") for r in results)
    assert correct >= 9  # 95.7 % held-out accuracy
    assert all(abs(sum(t["probability"] for t in r["top_k"]) - 1) < 0.05 for r in results)


def test_infer_eager_and_npy_agree_with_onnxruntime(setup, tmp_path, capsys):
    model, images = setup
    x = to_tensor_batch(np.stack([np.asarray(Image.open(f)) for f in sorted(images.glob("*.png"))[:4]]),
                        (0.5,) * 3, (0.25,) * 3)
    np.save(tmp_path / "batch.npy", x)
    capsys.readouterr()
    assert infer_main([str(model), str(tmp_path / "batch.npy"), "--json"]) == 0
    ort = json.loads(capsys.readouterr().out)["results"]
    assert infer_main([str(model), str(tmp_path / "batch.npy"), "--json", "--backend", "eager"]) == 0
    eager = json.loads(capsys.readouterr().out)["results"]
    assert [r["top_k"][0]["class"] for r in ort] == [r["top_k"][0]["class"] for r in eager]


def test_attention_map_png_is_written(setup, tmp_path, capsys):
    model, images = setup
    files = sorted(map(str, images.glob("*.png")))[:3]
    assert infer_main([str(model), *files, "--attention-map", str(tmp_path / "a.png"), "--block", "layer2.0"]) == 0
    picture = Image.open(tmp_path / "a.png")
    assert picture.format == "PNG"
    # One row per input, each the image beside its map: wider than one image, taller than three.
    assert picture.width > 2 * 64 and picture.height > 3 * 64
    assert np.asarray(picture).std() > 10  # not blank
    assert infer_main([str(model), *files, "--attention-map", str(tmp_path / "a.png")]) == 2  # exists
    assert infer_main([str(model), *files, "--attention-map", str(tmp_path / "b.png"), "--block", "layer9.0"]) == 2
    assert "blocks: layer1.0, layer2.0, layer3.0, layer4.0" in capsys.readouterr().err


@pytest.mark.parametrize("variant", ["original"])
def test_spatial_attention_sits_on_the_object(variant):
    model = build_model(ModelSpec("resnet_mini", variant, weights="reference")).model
    samples = [sample_at(i) for i in range(100)]
    x = torch.from_numpy(to_tensor_batch(np.stack([s.image for s in samples]), (0.5,) * 3, (0.25,) * 3))
    amap = spatial_gates(model, x)["layer1.0"]
    scale = 64 // amap.shape[1]
    on_object = 0
    for s, a in zip(samples, amap):
        x0, y0, x1, y1 = (v // scale for v in s.box)
        inside = np.zeros_like(a, bool)
        inside[y0:y1 + 1, x0:x1 + 1] = True
        on_object += a[inside].mean() > a[~inside].mean()
    assert on_object >= 90


@pytest.mark.parametrize("args, message", [
    (["missing.png"], "does not exist"),
    (["notes.txt"], "is not an image"),
    (["BAD.png"], "cannot read image"),
    (["--top-k", "0", "x.png"], "--top-k: '0' is not a positive integer"),
])
def test_infer_errors_are_one_line(setup, tmp_path, capsys, args, message):
    model, _ = setup
    (tmp_path / "BAD.png").write_bytes(b"not a png")
    args = [str(tmp_path / "BAD.png") if a == "BAD.png" else a for a in args]
    assert infer_main([str(model), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


@pytest.mark.parametrize("array, message", [
    (np.zeros((2, 3, 64, 64), np.float64), "dtype float64, the model expects float32"),
    (np.zeros((2, 3, 32, 64), np.float32), "shape [2, 3, 32, 64]"),
    (np.full((1, 3, 64, 64), np.nan, np.float32), "contains NaN or Inf"),
])
def test_infer_bad_arrays_are_one_line(setup, tmp_path, capsys, array, message):
    model, _ = setup
    np.save(tmp_path / "a.npy", array)
    assert infer_main([str(model), str(tmp_path / "a.npy")]) == 2
    assert message in capsys.readouterr().err


def test_bench_reports_every_configuration(setup, tmp_path, capsys):
    model, _ = setup
    assert bench_main([str(model), "--precisions", "fp32,fp16", "--batch-sizes", "1,2", "--runs", "5", "--warmup", "1",
                       "--bare", "--json-out", str(tmp_path / "b.json"), "--plot", str(tmp_path / "b.png")]) == 0
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    labels = {(r["label"], r["batch"]) for r in rows}
    assert labels == {(c, b) for b in (1, 2) for c in ("eager fp32", "onnxruntime fp32", "onnxruntime fp16", "bare session.run fp32")}
    for r in rows:
        assert r["runs"] == 5 and 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["vs_eager"] > 0
    plot = Image.open(tmp_path / "b.png")
    assert plot.format == "PNG" and np.asarray(plot).std() > 10  # a chart, not a blank image
