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

import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

# The attribute as OpenVINO 2025/2026 serializes it: "keep this node out of any lower precision".
_ATTRIBUTE = {"name": "DisablePrecisionConversion", "version": "0", "value": "dynamic:f16"}


def attention_tensor_names(onnx_source: str | Path | bytes) -> set[str]:
    """ONNX output tensor names of every node in an attention region."""
    import onnx

    from ...precision.attention import find_attention_regions

    proto = (onnx.load_from_string(onnx_source) if isinstance(onnx_source, bytes)
             else onnx.load(str(onnx_source), load_external_data=False))
    nodes = {name for region in find_attention_regions(proto) for name in region.nodes}
    return {out for node in proto.graph.node if node.name in nodes for out in node.output}


def mark_attention_f32(core, model, onnx_source: str | Path | bytes):
    """(model with its attention layers marked to keep f32, how many OpenVINO ops were marked)."""
    import numpy as np
    import openvino as ov

    wanted = attention_tensor_names(onnx_source)
    layers = {op.get_friendly_name() for op in model.get_ops()
              if any(name in wanted for out in op.outputs() for name in out.get_names())}
    if not layers:
        return model, 0
    with tempfile.TemporaryDirectory(prefix="cbam-ov-") as tmp:
        xml_path = os.path.join(tmp, "model.xml")
        ov.save_model(model, xml_path, compress_to_fp16=False)
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
        weights = Path(tmp, "model.bin").read_bytes()
    xml = ET.tostring(tree.getroot())
    return core.read_model(xml, ov.Tensor(np.frombuffer(weights, np.uint8).copy())), marked


def runtime_precisions(compiled) -> dict[str, str]:
    """Runtime precision of each executed layer of a compiled model (its runtime model's rt_info)."""
    out = {}
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        out[op.get_friendly_name()] = str(info["runtimePrecision"].astype(str))
    return out
