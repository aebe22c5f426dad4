"""`cbam-export --model ... --mean/--std/--image-size/--channel-order`: a user's image model records its
preprocessing, and `cbam-infer IMAGE.png`, config.pbtxt and clients (`preprocess_images`) use it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cbam_deploy.cli.export import main as export_main
from cbam_deploy.cli.infer import main as infer_main
from cbam_deploy.model_dir import ExportedModel
from cbam_deploy.preprocess import preprocess_images
from cbam_deploy.serving.triton_config import parse_config

TINYNET = '''
import torch
from torch import nn
from cbam_deploy import create_cbam


class TinyNet(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.cbam = create_cbam("original", 16, ratio=4)
        self.head = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.head(self.cbam(self.stem(x)).mean((2, 3)))


def build_net(num_classes=4):
    return TinyNet(num_classes)
'''
MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("user_pre")
    (folder / "tinynet.py").write_text(TINYNET)
    assert export_main(["--model", f"{folder / 'tinynet.py'}:build_net", "--input-shape", "1x3x32x32", "--classifier",
                        "--mean", ",".join(map(str, MEAN)), "--std", ",".join(map(str, STD)),
                        "--channel-order", "BGR", "--out", str(folder / "models"), "--name", "tinynet"]) == 0
    return folder / "models" / "tinynet"


def _png(path: Path, size=(40, 48)) -> Path:
    pixels = np.random.default_rng(3).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_preprocessing_recorded_in_metadata_and_triton_config(exported: Path) -> None:
    pre = json.loads((exported / "export.json").read_text())["metadata"]["preprocessing"]
    assert pre["mean"] == MEAN and pre["std"] == STD and pre["channel_order"] == "BGR"
    assert pre["input_size"] == [32, 32]  # from --input-shape, as no --image-size was given
    params = parse_config((exported / "config.pbtxt").read_text()).parameters
    assert params["cbam_deploy.preprocessing.mean"].string_value == "0.5,0.4,0.3"
    assert params["cbam_deploy.preprocessing.std"].string_value == "0.2,0.25,0.3"
    assert params["cbam_deploy.preprocessing.channel_order"].string_value == "BGR"


def test_infer_takes_an_image_with_the_recorded_preprocessing(exported: Path, tmp_path: Path, capsys) -> None:
    image = _png(tmp_path / "cat.png")
    assert infer_main([str(exported), str(image), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["results"]) == 1
    # The batch a client builds from the metadata: resized, BGR, /255, (x - mean) / std.
    batch = preprocess_images([image], ExportedModel.open(exported).preprocessing)
    rgb = np.asarray(Image.open(image).convert("RGB").resize((32, 32), Image.BILINEAR), np.float32) / 255.0
    expected = (rgb[..., ::-1].transpose(2, 0, 1) - np.array(MEAN, np.float32)[:, None, None]) \
        / np.array(STD, np.float32)[:, None, None]
    assert batch.shape == (1, 3, 32, 32)
    np.testing.assert_allclose(batch[0], expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("extra, message", [
    (["--mean", "0.5,0.5,0.5"], "needs both --mean and --std"),
    (["--mean", "0.5,0.5,0.5", "--std", "0.2,0,0.2"], "every value must be above 0"),
    (["--mean", "0.5,0.5", "--std", "0.2,0.2,0.2"], "must be three finite numbers"),
    (["--mean", "a,b,c", "--std", "0.2,0.2,0.2"], "must be three numbers"),
    (["--mean", "0.5,0.5,0.5", "--std", "0.2,0.2,0.2", "--image-size", "64"], "must be HxW"),
])
def test_bad_preprocessing_options_are_one_line(tmp_path: Path, capsys, extra, message) -> None:
    (tmp_path / "tinynet.py").write_text(TINYNET)
    code = export_main(["--model", f"{tmp_path / 'tinynet.py'}:build_net", "--input-shape", "1x3x32x32",
                        "--out", str(tmp_path / "models"), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_preprocessing_options_are_for_user_models(tmp_path: Path, capsys) -> None:
    code = export_main(["--mean", "0.5,0.5,0.5", "--std", "0.2,0.2,0.2", "--out", str(tmp_path / "models")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "go with --model" in err and len(err.splitlines()) == 1, err


def test_preprocessing_needs_an_rgb_input(tmp_path: Path, capsys) -> None:
    (tmp_path / "tinynet.py").write_text(TINYNET)
    code = export_main(["--model", f"{tmp_path / 'tinynet.py'}:build_net", "--input-shape", "1x1x32x32",
                        "--mean", "0.5,0.5,0.5", "--std", "0.2,0.2,0.2", "--out", str(tmp_path / "models")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "describe RGB images" in err, err


def test_int8_calibration_images_follow_the_recorded_channel_order(exported: Path, tmp_path: Path) -> None:
    """An image folder calibrates a BGR model with BGR batches, as cbam-infer feeds it."""
    from cbam_deploy.api.calibration import calibration_for

    folder = tmp_path / "calib"
    folder.mkdir()
    paths = [_png(folder / f"{i}.png") for i in range(2)]
    model = ExportedModel.open(exported)
    data, _, _ = calibration_for(model, str(folder))
    np.testing.assert_allclose(data, preprocess_images(paths, model.preprocessing), rtol=0, atol=1e-6)


def test_image_size_beyond_the_limit_is_refused_before_export(tmp_path: Path, capsys) -> None:
    (tmp_path / "tinynet.py").write_text(TINYNET)
    code = export_main(["--model", f"{tmp_path / 'tinynet.py'}:build_net", "--input-shape", "1x3x32x32",
                        "--mean", "0.5,0.5,0.5", "--std", "0.2,0.2,0.2", "--image-size", "99999x32",
                        "--out", str(tmp_path / "models")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "at most 16384 pixels" in err and len(err.splitlines()) == 1, err
