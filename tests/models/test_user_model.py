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
