"""cbam-bench --profile on resnet_mini exports of every registered variant: the entries by their
PyTorch names, shares that add up, the JSON schema, the reports, the ablation's bypassed graph.
No timing assertions beyond structural sanity (the machine is shared)."""

from __future__ import annotations

import json
import sys

import numpy as np
import onnx
import pytest

from cbam_deploy.api.bench import profile
from cbam_deploy.cli.bench import main as bench_main
from cbam_deploy.cli.export import main as export_main
from cbam_deploy.models import create_model
from tests.conftest import VARIANTS

RUNS = dict(runs=3, warmup=1, threads=1)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("profile")
    out = {}
    for variant in VARIANTS:
        assert export_main(["--variant", variant, "--weights", "random", "--num-classes", "5", "--out", str(root),
                            "--name", f"mini_{variant}"]) == 0
        out[variant] = root / f"mini_{variant}"
    return out


def _attention_modules(variant: str) -> tuple[list[str], dict[str, list[str]]]:
    """The eager model's attention blocks (``layerX.Y.cbam``) and their children's names."""
    model = create_model("resnet_mini", variant, num_classes=5)
    names = [n for n, _ in model.named_modules()]
    blocks = [n for n in names if n.endswith(".cbam")]
    return blocks, {b: [n for n in names if n.rpartition(".")[0] == b] for b in blocks}


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_block_is_split_by_its_pytorch_names(exports, variant):
    report = profile(exports[variant], **RUNS)
    blocks, children = _attention_modules(variant)
    assert [b.block for b in report.blocks] == blocks
    modules = {m["module"] for m in report.modules}
    for b in report.blocks:
        assert b.channel_ms > 0 and b.spatial_ms > 0 and b.gating_ms > 0, b
        # The parts are the variant's own submodules (channelattention/spatialattention, or ca/sa).
        assert sorted(b.parts["channel"] + b.parts["spatial"]) == sorted(children[b.block])
        assert set(children[b.block]) | {b.block} <= modules


@pytest.mark.parametrize("variant", VARIANTS)
def test_shares_add_up(exports, variant):
    report = profile(exports[variant], **RUNS)
    assert 0 < report.attributed_share <= 1
    assert 0 < report.attention_share < report.attributed_share
    assert report.attention_ms == pytest.approx(sum(b.ms for b in report.blocks))
    top = [m for m in report.modules if "." not in m["module"]]
    assert sum(m["ms"] for m in top) == pytest.approx(report.attributed_ms)
    by_name = {m["module"]: m["ms"] for m in report.modules}
    for b in report.blocks:  # a block's parts never exceed it; the block never exceeds its residual block
        assert sum(by_name[c] for c in b.parts["channel"] + b.parts["spatial"]) <= by_name[b.block] + 1e-9
        assert by_name[b.block] <= by_name[b.block.rpartition(".")[0]] + 1e-9
    assert sum(s["ms"] for s in report.stages) == pytest.approx(report.attributed_ms)


def test_cli_json_markdown_and_ablation(exports, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where ONNX Runtime would drop a stray profile
    md = tmp_path / "p.md"
    capsys.readouterr()
    assert bench_main([str(exports["original"]), "--profile", "--runs", "3", "--warmup", "1", "--threads", "1",
                       "--ablation", "stages", "--json", "--markdown", str(md)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"attention_share", "attributed_share", "modules", "blocks", "rule", "tips", "ablation"} <= set(data)
    assert all(set(m) == {"module", "ms", "share"} for m in data["modules"])
    assert "layer1.0.cbam.channelattention" in {m["module"] for m in data["modules"]}
    assert {"channel_ms", "spatial_ms", "gating_ms", "share"} <= set(data["blocks"][0])
    ablation = data["ablation"]
    assert ablation["without_ms"] > 0 and set(ablation["stages"]) == {"layer1", "layer2", "layer3", "layer4"}
    assert ablation["attributed_share"] == data["attention_share"]
    text = md.read_text()
    assert "## Attention blocks" in text and "layer4.0.cbam" in text and "## Attribution rule" in text
    assert not list(tmp_path.rglob("onnxruntime_profile*")) and not list(exports["original"].rglob("onnxruntime_profile*"))


def test_cli_refuses_what_a_profile_cannot_do(exports, capsys):
    folder = str(exports["original"])
    for extra, message in ((["--precisions", "fp32,fp16"], "one precision"), (["--batch-sizes", "1,2"], "one batch size"),
                           (["--bare"], "--bare"), (["--provider", "tensorrt"], "tensorrt"),
                           (["--backends", "openvino,onnxruntime-cpu"], "one backend"),
                           (["--backends", "onnxruntime-tensorrt"], "one backend"),
                           (["--backends", "tensorrt"], "--backends 'tensorrt': unknown tensorrt")):
        assert bench_main([folder, "--profile", *extra]) != 0
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    for extra in (["--ablation", "network"],):
        assert bench_main([folder, *extra]) != 0
        assert "add --profile" in capsys.readouterr().err


def test_plot_is_written(exports, tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image

    png = tmp_path / "p.png"
    assert bench_main([str(exports["parallel"]), "--profile", "--runs", "3", "--warmup", "1", "--threads", "1",
                       "--plot", str(png)]) == 0
    picture = Image.open(png)
    assert picture.format == "PNG" and picture.size[0] > 800 and np.asarray(picture.convert("L")).std() > 10


def test_plot_without_matplotlib_is_one_line_and_writes_nothing(exports, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    capsys.readouterr()
    assert bench_main([str(exports["original"]), "--profile", "--plot", str(tmp_path / "p.png"),
                       "--markdown", str(tmp_path / "p.md")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cbam-deploy[plot]" in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("variant", VARIANTS)
def test_bypassed_graph_is_the_plain_network(exports, variant):
    from cbam_deploy.profiling.ablation import bypass_attention
    from cbam_deploy.profiling.modules import attention_map, scopes_for

    proto = onnx.load(str(exports[variant] / "1" / "model.onnx"))
    attention = attention_map(proto, scopes_for(proto))
    bypassed = bypass_attention(proto, attention)
    onnx.checker.check_model(bypassed)
    ops = [n.op_type for n in bypassed.graph.node]
    assert "Sigmoid" not in ops and "Mul" not in ops and ops.count("Add") == 4  # the four residual Adds remain
    assert proto.graph.node[0].op_type  # the source is left as it was
    assert sum(n.op_type == "Sigmoid" for n in proto.graph.node) == 8


def test_openvino_profile_names_the_same_blocks(exports):
    pytest.importorskip("openvino")
    report = profile(exports["original"], backend="openvino", **RUNS)
    assert report.backend.startswith("openvino")
    assert [b.block for b in report.blocks] == _attention_modules("original")[0]
    assert 0 < report.attention_share < report.attributed_share <= 1


def test_a_network_without_attention_profiles_with_a_zero_share(tmp_path):
    assert export_main(["--variant", "none", "--weights", "random", "--num-classes", "5", "--out", str(tmp_path),
                        "--name", "plain"]) == 0
    report = profile(tmp_path / "plain", ablation="network", **RUNS)
    assert report.blocks == [] and report.attention_share == 0 and 0 < report.attributed_share <= 1
    assert any("no attention block" in n for n in report.notes) and report.tips == []
    assert report.to_dict()["ablation"]["note"] == "no attention block to bypass"


def test_fp16_export_keeps_the_blocks_behind_its_casts(exports):
    # The FP16 converter casts each sigmoid's output before its gate Mul: the same gates, the same names.
    report = profile(exports["original"], precision="fp16", **RUNS)
    assert [b.block for b in report.blocks] == _attention_modules("original")[0]
    assert all(b.parts == {"channel": [f"{b.block}.channelattention"], "spatial": [f"{b.block}.spatialattention"]}
               for b in report.blocks)
