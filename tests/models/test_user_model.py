"""Users' own networks: loading factories, errors naming the user's code, and the weights fingerprint."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cbam_deploy.errors import UsageError
from cbam_deploy.models.user_model import (UserModelSpec, build_user_model, load_factory, parse_model_kwargs,
                                           state_sha256)
from cbam_deploy.optimize import globalize_pooling

from ..conftest import EXAMPLES, REPO, randomize_batchnorm

AUTHORS = str(EXAMPLES / "authors_style.py")
FIXTURES = str(REPO / "tests" / "fixtures")


def test_file_and_module_references_load_the_same_factory():
    from_file = load_factory(f"{AUTHORS}:build_net")
    from_module = load_factory("tests.fixtures.broken_models:four_channels")
    assert from_file.__name__ == "build_net" and from_module.__name__ == "four_channels"


@pytest.mark.parametrize("ref, message", [
    (f"{FIXTURES}/import_error_model.py:build_net", "import_error_model.py, line 2: ModuleNotFoundError"),
    (f"{FIXTURES}/missing.py:build_net", "no such file"),
    (f"{FIXTURES}/broken_models.py:build", "has no 'build'; it defines: NeedsFourChannels, four_channels, not_a_module, raising_factory"),
    (f"{FIXTURES}/broken_models.py:raising_factory", "broken_models.py, line 7: ValueError: width 8 is not supported"),
    (f"{FIXTURES}/broken_models.py:not_a_module", "returned a str, not a torch.nn.Module"),
    ("no_colon_here", "must be MODULE:FACTORY"),
    ("not_a_real_package.nets:build", "importing module 'not_a_real_package.nets' failed"),
])
def test_errors_name_the_users_code(ref, message):
    with pytest.raises(UsageError) as info:
        build_user_model(UserModelSpec(ref))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text, message", [("{num_classes: 3}", "not valid JSON"), ("[1, 2]", "must be a JSON object")])
def test_bad_model_kwargs(text, message):
    with pytest.raises(UsageError, match=message):
        parse_model_kwargs(text)


def test_weights_fingerprint_detects_any_change():
    built = build_user_model(UserModelSpec(f"{AUTHORS}:build_net", kwargs={"width": 16}, seed=3))
    again = build_user_model(UserModelSpec(f"{AUTHORS}:build_net", kwargs={"width": 16}, seed=3))
    assert state_sha256(built.model) == state_sha256(again.model)  # the seed makes the factory reproducible
    randomize_batchnorm(again.model, seed=1)
    assert state_sha256(built.model) != state_sha256(again.model)


class WholeMapPooling(nn.Module):
    """The authors' pooling, in both spellings of the size."""

    def forward(self, x):
        avg = F.avg_pool2d(x, (x.size(2), x.size(3)), stride=(x.size(2), x.size(3)))
        mx = F.max_pool2d(x, (x.shape[2], x.shape[3]), stride=(x.shape[2], x.shape[3]))
        local = F.avg_pool2d(x, 2)  # not whole-map: must stay as it is
        return avg + mx, local


@pytest.mark.parametrize("size", [(12, 12), (7, 9)])
def test_whole_map_pooling_becomes_adaptive_with_the_same_result(size):
    model = WholeMapPooling().eval()
    rewritten, names = globalize_pooling(model)
    assert sorted(names) == ["avg_pool2d", "max_pool2d"]
    x = torch.randn(2, 5, *size)
    for a, b in zip(model(x), rewritten(x)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert [n.target for n in rewritten.graph.nodes if n.op == "call_function"].count(F.avg_pool2d) == 1


def test_pooling_rewrite_leaves_untraceable_models_alone():
    class DataDependent(nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x

    model = DataDependent()
    assert globalize_pooling(model) == (model, [])


def test_file_in_a_package_imports_relatively():
    # The CBAM authors' layout: model_resnet.py does `from .cbam import *`.
    factory = load_factory(f"{EXAMPLES / 'cbam_authors' / 'model_resnet.py'}:ResidualNet")
    model = factory("CIFAR10", 18, 10, "CBAM", width=16).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert type(model.layer1[0].cbam).__name__ == "CBAM"


def write_package(root, name: str, init: str = "") -> None:
    pkg = root / name
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text(init)
    (pkg / "layers.py").write_text("import torch.nn as nn\nWIDTH = 3\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "net.py").write_text(
        "import torch.nn as nn\nfrom ..layers import WIDTH\nfrom . import helpers\n"
        "def build():\n    return nn.Linear(WIDTH, helpers.OUT)\n")
    (pkg / "sub" / "helpers.py").write_text("OUT = 2\n")


def test_nested_package_named_like_an_installed_one_does_not_collide(tmp_path):
    import json
    import sys

    write_package(tmp_path, "json")  # a user's folder that shares its name with the standard library's json
    model = load_factory(f"{tmp_path / 'json' / 'sub' / 'net.py'}:build")()
    assert isinstance(model, nn.Linear) and model.in_features == 3 and model.out_features == 2
    assert sys.modules["json"] is json and hasattr(json, "dumps")
    # Loading again (a rebuild in the same process) gives a fresh import, not a stale one.
    (tmp_path / "json" / "layers.py").write_text("WIDTH = 5\n")
    assert load_factory(f"{tmp_path / 'json' / 'sub' / 'net.py'}:build")().in_features == 5


def test_a_failing_package_init_is_one_line_naming_it(tmp_path):
    write_package(tmp_path, "mynets", init="raise RuntimeError('package init broke')\n")
    with pytest.raises(UsageError) as info:
        load_factory(f"{tmp_path / 'mynets' / 'sub' / 'net.py'}:build")
    message = str(info.value)
    assert "__init__.py, line 1: RuntimeError: package init broke" in message and "\n" not in message
