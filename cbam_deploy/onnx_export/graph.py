"""Simplify (onnxsim), check, and describe an exported ONNX graph."""

from __future__ import annotations

import collections

import onnx

from ..errors import CheckFailedError

FORBIDDEN_OPS = ("BatchNormalization", "Identity")


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    """Node count per op type of the main graph, most frequent first."""
    return dict(collections.Counter(n.op_type for n in model.graph.node).most_common())


def simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxsim; a failure is an error, never just a log line."""
    import onnxsim

    try:
        # check_n=0: onnxsim's own check runs ONNX Runtime on random inputs before and after (2-3 s
        # of CPU on a ResNet-50); the export's parity stage runs the final graph against eager at
        # every case anyway, which is the stronger check.
        simplified, ok = onnxsim.simplify(model, check_n=0)
    except Exception as exc:
        raise CheckFailedError(f"onnxsim failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    if not ok:
        raise CheckFailedError("onnxsim's check of the simplified model against the original failed")
    copy_name_scopes(model, simplified)
    return simplified


def copy_name_scopes(source: onnx.ModelProto, target: onnx.ModelProto) -> None:
    """Give ``target``'s nodes the dynamo exporter's module scopes of ``source``'s nodes of the same name.

    Why: onnxsim and ONNX Runtime's quantizer drop nodes' metadata but keep their names, and
    compare/localize.py reads the scopes to name the PyTorch module behind a diverging tensor.
    """
    keys = ("pkg.torch.onnx.name_scopes", "cbam_deploy.replaces")  # the second: set by optimize's rewrites
    kept = {n.name: [p for p in n.metadata_props if p.key in keys] for n in source.graph.node}
    for node in target.graph.node:
        present = {p.key for p in node.metadata_props}
        node.metadata_props.extend(p for p in kept.get(node.name, []) if p.key not in present)


def check(model: onnx.ModelProto) -> onnx.ModelProto:
    """``onnx.checker`` and strict, type-checked shape inference (what ``full_check`` adds); returns
    the shape-inferred model."""
    # One serialization (a ResNet-50 is ~100 MB) and one shape inference: full_check would run the
    # same strict inference again inside the checker.
    data = model.SerializeToString()
    try:
        onnx.checker.check_model(data, full_check=False)
        return onnx.shape_inference.infer_shapes(data, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise CheckFailedError(f"onnx.checker rejected the model: {str(exc).splitlines()[0]}") from exc


def forbidden_ops(model: onnx.ModelProto) -> dict[str, int]:
    """Ops a folded, simplified graph must not contain, with their counts (empty when clean)."""
    counts = op_counts(model)
    return {op: counts[op] for op in FORBIDDEN_OPS if counts.get(op)}


def io_signature(model: onnx.ModelProto) -> dict[str, list[dict[str, object]]]:
    """Names, element types and dims (ints, or the dynamic axis's name) of inputs and outputs."""

    def describe(values) -> list[dict[str, object]]:
        out = []
        for v in values:
            t = v.type.tensor_type
            dims = [d.dim_param or d.dim_value if (d.dim_param or d.HasField("dim_value")) else None for d in t.shape.dim]
            out.append({"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name, "shape": dims})
        return out

    initializers = {i.name for i in model.graph.initializer}
    return {"inputs": describe(i for i in model.graph.input if i.name not in initializers),
            "outputs": describe(model.graph.output)}


def specialized_axes(model: onnx.ModelProto, requested: dict[str, dict[int, str]]) -> list[str]:
    """Requested dynamic axes that the exported graph made fixed, as 'input[axis]=size' strings.

    torch.export specialises an axis the model's code makes static (e.g. a pooling kernel computed
    from the input size) instead of failing; the ONNX then rejects every other size.
    """
    found = []
    for value in io_signature(model)["inputs"]:
        for axis in requested.get(str(value["name"]), {}):
            dim = value["shape"][axis]
            if isinstance(dim, int):
                found.append(f"{value['name']}[{axis}]={dim}")
    return found


def ensure_node_names(model: onnx.ModelProto) -> None:
    """Give unnamed nodes unique names, in place: block lists, exclusion lists and rewrites work by name."""
    used = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in used:
                name += "_"
            node.name = name
            used.add(name)


def globalize_whole_map_pools(model: onnx.ModelProto) -> int:
    """MaxPool/AveragePool whose unpadded kernel covers the whole (static) input map become
    GlobalMaxPool/GlobalAveragePool, in place; returns how many. Needs shape-inferred ``model``.

    Why: at a static height and width the TorchScript exporter writes ``AdaptiveMaxPool2d(1)`` as a
    MaxPool with a kernel of the map's size. Same arithmetic, but downstream code recognises global
    pooling by its op (FP16 keeps GlobalMaxPool/GlobalAveragePool in FP32; so do the rewrites).
    """
    typed = [*model.graph.value_info, *model.graph.input, *model.graph.output]
    shapes = {v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
              for v in typed}
    count = 0
    for node in model.graph.node:
        if node.op_type not in ("MaxPool", "AveragePool") or len(node.output) != 1:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        shape = shapes.get(node.input[0]) or []
        spatial = shape[2:]
        if len(shape) < 3 or None in spatial or 0 in spatial or list(attrs.get("kernel_shape", [])) != spatial:
            continue
        auto_pad = attrs.get("auto_pad", b"NOTSET")
        if any(attrs.get("pads", [])) or any(d != 1 for d in attrs.get("dilations", [])) or \
                auto_pad not in (b"NOTSET", b"VALID", "NOTSET", "VALID"):
            continue
        node.op_type = "GlobalMaxPool" if node.op_type == "MaxPool" else "GlobalAveragePool"
        del node.attribute[:]
        count += 1
    return count
