"""Keep CBAM's attention regions in f32 when OpenVINO's CPU plugin compiles the rest in bf16.

The CPU plugin lowers every floating-point node to the inference precision except nodes whose
runtime info carries ``DisablePrecisionConversion`` (the attribute ``ov::disable_fp16_compression``
writes; the plugin's node constructor reads it and keeps the node's original precision whatever
the inference precision is). OpenVINO's Python API can read that attribute but not create it, so
the model goes through its own IR: serialized with ``ov.save_model``, the attribute is added to the
attention layers in the IR's XML (where OpenVINO's IR reader creates the real attribute), and the
IR is read back from memory. Measured with OpenVINO 2026.4 on ``original`` resnet_mini: the
channel mean/max (Reduce), the gate MLP and spatial convolutions and the concatenation run f32 in
the compiled model (``runtimePrecision`` of its runtime model), the backbone bf16.

Which nodes: ``precision.attention.find_attention_regions`` on the ONNX (sigmoid gates, channel
mean/max, the gates' pooling and MLPs), matched to OpenVINO ops by their output tensor names (the
ONNX frontend keeps them). What OpenVINO fuses is out of reach: a gate Mul fused into the
convolution before it runs at that convolution's precision.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable

# The attribute as OpenVINO 2025/2026 serializes it: "keep this node out of any lower precision".
_ATTRIBUTE = {"name": "DisablePrecisionConversion", "version": "0", "value": "dynamic:f16"}
_FORMAT = b"cbam-deploy attention-f32 IR v1\n"  # change it when the marking changes: old IRs are not reused


def attention_tensor_names(onnx_source: str | Path | bytes) -> set[str]:
    """ONNX output tensor names of every node in an attention region."""
    import onnx

    from ...precision.attention import find_attention_regions

    proto = (onnx.load_from_string(onnx_source) if isinstance(onnx_source, bytes)
             else onnx.load(str(onnx_source), load_external_data=False))
    nodes = {name for region in find_attention_regions(proto) for name in region.nodes}
    return {out for node in proto.graph.node if node.name in nodes for out in node.output}


def _write_marked_ir(model, onnx_source: str | Path | bytes, xml_path: Path) -> int:
    """Write ``model`` as IR at ``xml_path`` (+ .bin) with its attention layers marked; returns how many."""
    import openvino as ov

    wanted = attention_tensor_names(onnx_source)
    layers = {op.get_friendly_name() for op in model.get_ops()
              if any(name in wanted for out in op.outputs() for name in out.get_names())}
    ov.save_model(model, str(xml_path), compress_to_fp16=False)
    tree = ET.parse(xml_path)
    marked = 0
    for layer in tree.getroot().iter("layer"):
        if layer.get("name") not in layers:
            continue
        rt_info = layer.find("rt_info")
        if rt_info is None:
            rt_info = ET.Element("rt_info")
            layer.insert(1 if layer.find("data") is not None else 0, rt_info)
        if not any(a.get("name") == _ATTRIBUTE["name"] for a in rt_info):
            ET.SubElement(rt_info, "attribute", _ATTRIBUTE)
        marked += 1
    tree.write(xml_path)
    return marked


def mark_attention_f32(core, model, onnx_source: str | Path | bytes):
    """(the model read back with its attention layers marked to keep f32, how many ops were marked)."""
    with tempfile.TemporaryDirectory(prefix="cbam-ov-") as tmp:
        xml_path = Path(tmp, "model.xml")
        marked = _write_marked_ir(model, onnx_source, xml_path)
        return core.read_model(str(xml_path)), marked  # weights are read into memory: the folder can go


def marked_model(core, read: Callable[[], object], onnx_source: str | Path | bytes, cache: Path | None):
    """(what to compile, ops marked): the marked model, or with a cache folder the marked IR's path,
    written once per source (keyed by its SHA-256) under ``cache/attention-f32``, so that a second
    start neither reads the ONNX nor marks it again and OpenVINO's cache finds the compiled model."""
    if cache is None:
        return mark_attention_f32(core, read(), onnx_source)
    data = onnx_source if isinstance(onnx_source, bytes) else Path(onnx_source).read_bytes()
    key = hashlib.sha256(_FORMAT + data).hexdigest()[:32]
    folder = cache / "attention-f32"
    xml_path, stamp = folder / f"{key}.xml", folder / f"{key}.json"
    try:
        return str(xml_path), int(json.loads(stamp.read_text())["marked"])
    except (OSError, ValueError, KeyError):
        pass
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".partial-", dir=folder) as tmp:
        partial = Path(tmp, "model.xml")
        marked = _write_marked_ir(read(), onnx_source, partial)
        os.replace(partial.with_suffix(".bin"), xml_path.with_suffix(".bin"))
        os.replace(partial, xml_path)
    stamp.write_text(json.dumps({"marked": marked}) + "\n")  # last: a stamp means both files are complete
    return str(xml_path), marked


def runtime_precisions(compiled) -> dict[str, str]:
    """Runtime precision of each executed layer of a compiled model (its runtime model's rt_info)."""
    out = {}
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        out[op.get_friendly_name()] = str(info["runtimePrecision"].astype(str))
    return out
