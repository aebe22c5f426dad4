"""The TensorRT path without TensorRT: the loader calls Polygraphy's loaders with keywords that the
pinned Polygraphy really takes (read from its signatures), and the runner over Polygraphy's
``TrtRunner`` follows the lifecycle (entered twice: one engine; exit frees it; a plan from another
GPU is refused before anything is deserialized). Fakes stand in for TensorRT and the GPU."""

from __future__ import annotations

import inspect
import types

import numpy as np
import pytest

from cbam_deploy.backends.tensorrt import PlanSidecar, derive_profile, write_sidecar
from cbam_deploy.backends.tensorrt import loader as loader_mod
from cbam_deploy.backends.tensorrt import runner as runner_mod
from cbam_deploy.backends.tensorrt.environment import TensorRTEnvironment
from cbam_deploy.errors import UsageError

polygraphy_trt = pytest.importorskip("polygraphy.backend.trt")
ENV = TensorRTEnvironment("10.13.3.9", "NVIDIA H100 80GB HBM3", "9.0")
PROFILE = derive_profile([{"name": "input", "shape": ["batch", 3, 64, 64]}], traced_shapes={"input": [1, 3, 64, 64]})


def _accepted(cls) -> set[str]:
    """Keyword names a Polygraphy loader takes, through its base classes (CreateConfig passes **kwargs on)."""
    names: set[str] = set()
    for klass in inspect.getmro(cls):
        if "__init__" in vars(klass):
            names |= set(inspect.signature(klass.__init__).parameters)
    return names - {"self", "args", "kwargs"}


class Recorder:
    """A stand-in for ``polygraphy.backend.trt``: records each loader's keywords."""

    def __init__(self, tmp_path):
        self.calls: dict[str, dict] = {}
        recorder = self

        class Profile(dict):
            def add(self, name, min, opt, max):  # noqa: A002  (Polygraphy's own parameter names)
                self[name] = (min, opt, max)
                return self

        def loader(name, result=None):
            def make(*args, **kwargs):
                recorder.calls[name] = {"args": args, **kwargs}
                if name == "EngineBytesFromNetwork":
                    def build():
                        if kwargs.get("save_timing_cache"):
                            open(kwargs["save_timing_cache"], "wb").write(b"cache")
                        return b"PLAN"
                    return build
                return result or name
            return make

        self.module = types.SimpleNamespace(Profile=Profile, NetworkFromOnnxPath=loader("NetworkFromOnnxPath"),
                                            CreateConfig=loader("CreateConfig"),
                                            EngineBytesFromNetwork=loader("EngineBytesFromNetwork"))


def test_build_uses_polygraphy_loaders_with_keywords_the_pinned_version_takes(tmp_path, monkeypatch):
    fake = Recorder(tmp_path)
    fake_trt = types.SimpleNamespace(MemoryPoolType=types.SimpleNamespace(WORKSPACE="WORKSPACE"))
    monkeypatch.setattr(loader_mod, "import_polygraphy_trt", lambda: fake.module)
    monkeypatch.setattr(loader_mod, "import_tensorrt", lambda: fake_trt)
    cache = tmp_path / "timing.cache"
    result = loader_mod.build_plan(tmp_path / "m.onnx", PROFILE, workspace_bytes=2**30, timing_cache=cache)
    assert result.plan == b"PLAN" and result.timing_cache_saved and cache.read_bytes() == b"cache"
    assert not list(tmp_path.glob(".*partial"))  # saved beside the target, then renamed
    network, config = fake.calls["NetworkFromOnnxPath"], fake.calls["CreateConfig"]
    assert network["strongly_typed"] is True and network["args"] == (str(tmp_path / "m.onnx"),)
    assert config["memory_pool_limits"] == {"WORKSPACE": 2**30}
    assert dict(config["profiles"][0]) == {"input": PROFILE.shapes["input"]}
    for name, call in fake.calls.items():
        unknown = set(call) - {"args"} - _accepted(getattr(polygraphy_trt, name))
        assert not unknown, f"{name} of the pinned Polygraphy takes no {unknown}"
    assert "min" in inspect.signature(polygraphy_trt.Profile.add).parameters


class FakeTrtRunner:
    made: list["FakeTrtRunner"] = []

    def __init__(self, engine, name=None):
        self.loader, self.is_active, self.freed = engine, False, False
        FakeTrtRunner.made.append(self)

    def activate(self):
        self.is_active = True
        self.engine = FakeEngine()
        self.buffer = np.zeros((1, 10), np.float32)

    def deactivate(self):
        self.is_active, self.freed = False, True
        del self.engine

    def infer(self, feed, check_inputs=True):
        self.buffer[...] = feed["input"].sum()
        return {"logits": self.buffer}  # reused between calls, as TrtRunner's host buffers are


class FakeEngine:
    num_io_tensors = 2

    def get_tensor_name(self, i):
        return ["input", "logits"][i]

    def get_tensor_dtype(self, name):
        return "float32"

    def get_tensor_mode(self, name):
        return "in" if name == "input" else "out"

    def get_tensor_shape(self, name):
        return (-1, 3, 64, 64)

    def get_tensor_profile_shape(self, name, index):
        return PROFILE.shapes["input"]


@pytest.fixture
def plan(tmp_path, monkeypatch):
    FakeTrtRunner.made.clear()
    fake_trt = types.SimpleNamespace(nptype=np.dtype, TensorIOMode=types.SimpleNamespace(INPUT="in"))
    monkeypatch.setattr(runner_mod, "detect", lambda: ENV)
    monkeypatch.setattr(runner_mod, "import_tensorrt", lambda: fake_trt)
    monkeypatch.setattr(runner_mod, "import_polygraphy_trt", lambda: types.SimpleNamespace(TrtRunner=FakeTrtRunner))
    monkeypatch.setattr(runner_mod, "engine_from_plan", lambda data: ("EngineFromBytes", data))
    path = tmp_path / "model.plan"
    path.write_bytes(b"PLAN")
    write_sidecar(path, PlanSidecar(ENV.tensorrt_version, ENV.gpu_name, ENV.compute_capability, "fp32",
                                    [PROFILE.to_dict()], "", "", 1.0))
    return path


def test_runner_entered_twice_makes_one_engine_and_exit_frees_it(plan):
    from cbam_deploy.backends import open_runner

    runner = open_runner("tensorrt", plan)
    ones, twos = np.ones((1, 3, 64, 64), np.float32), np.full((1, 3, 64, 64), 2, np.float32)
    with runner, runner:
        first = runner.infer({"input": ones})["logits"]
        runner.infer({"input": twos})
        assert first[0, 0] == 3 * 64 * 64  # the caller's copy is not overwritten by the next call
        with pytest.raises(UsageError, match="outside the engine's profile"):
            runner.infer({"input": np.ones((64, 3, 64, 64), np.float32)})
    assert len(FakeTrtRunner.made) == 1 and FakeTrtRunner.made[0].freed
    assert FakeTrtRunner.made[0].loader == ("EngineFromBytes", b"PLAN")
    assert runner.input_specs() == [] and runner._runner is None
    with runner:
        assert [s.name for s in runner.input_specs()] == ["input"]
    assert len(FakeTrtRunner.made) == 2


def test_plan_from_another_gpu_is_refused_before_deserializing(plan, monkeypatch):
    from cbam_deploy.backends import open_runner

    monkeypatch.setattr(runner_mod, "detect", lambda: TensorRTEnvironment("10.13.3.9", "NVIDIA A100", "8.0"))
    with pytest.raises(UsageError, match=r"built for NVIDIA H100 80GB HBM3 \(compute capability 9.0\)"):
        with open_runner("tensorrt", plan):
            pass
    assert FakeTrtRunner.made == []
