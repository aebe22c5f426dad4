"""INT8 Q/DQ ONNX in the flavor its target runs fast: one file cannot be fast everywhere.

* ``s8s8``: symmetric int8 activations and per-channel weights, zero points 0: TensorRT's explicit
  quantization (and the path to INT8 on ONNX Runtime's GPU providers). Only convolutions are
  quantized, minus the attention regions, the classifier and the stem convolution that reads the
  raw input: keeping the stem in floating point kept the reference models within 0.5 points of
  eager (quantizing it cost `original` 1.3 points of held-out top-1, 95.7 -> 94.4 %).
* ``u8s8``: uint8 asymmetric activations, int8 per-channel weights: the x86 integer kernels of
  ONNX Runtime's CPU provider take uint8 activations (symmetric int8 ones ran slower than FP32
  there). Every op ONNX Runtime quantizes, minus the attention gates (the sigmoid and what combines
  it before the gating multiply), so that convolutions, residual adds, pooling and the attention's
  own MLP and convs chain in integers (benchmarks/precision_speed.py measures it).

Calibration and Q/DQ insertion are ONNX Runtime's ``quantize_static`` (a well-kept library), with
its calibration methods (min-max, entropy, percentile). Nodes the caller names (``keep_float``:
node -> why, e.g. the nodes of a PyTorch module the user or ``--keep-float auto`` chose) stay float.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from ..errors import CheckFailedError, UsageError
from ..options import CALIBRATION_METHODS, DEFAULT_CALIBRATION_METHOD, INT8_FLAVORS, calibration_method_for
from ..onnx_export.graph import copy_name_scopes, ensure_node_names
from .attention import classifier_nodes, find_attention_regions, input_convs


FLAVOR_DESCRIPTIONS = {
    "u8s8": "uint8 asymmetric activations, int8 symmetric per-channel weights (QDQ)",
    "s8s8": "int8 symmetric activations and per-channel weights, zero points 0 (explicit QDQ)",
}


@dataclass
class Int8Report:
    calibration: str
    calibration_samples: int
    quantized_op_types: list[str]
    excluded: dict[str, str] = field(default_factory=dict)  # node -> why
    qdq_pairs: int = 0
    warnings: list[str] = field(default_factory=list)
    flavor: str = "s8s8"
    calibration_method: str = ""

    def to_dict(self) -> dict[str, object]:
        reasons: dict[str, int] = {}
        for why in self.excluded.values():
            reasons[why] = reasons.get(why, 0) + 1
        return {"flavor": self.flavor, "flavor_description": FLAVOR_DESCRIPTIONS[self.flavor],
                "calibration_method": self.calibration_method,
                "calibration": self.calibration, "calibration_samples": self.calibration_samples,
                "quantized_op_types": self.quantized_op_types, "excluded_nodes": reasons,
                "qdq_pairs": self.qdq_pairs, "warnings": self.warnings}


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over a numpy batch, in small batches."""

    def __init__(self, input_name: str, data: np.ndarray, batch: int = 16) -> None:
        # Equal batches (the largest divisor of N up to ``batch``): ONNX Runtime's histogram collectors
        # (percentile, entropy) stack per-batch outputs and fail on a shorter last batch.
        batch = max(d for d in range(1, min(batch, len(data)) + 1) if len(data) % d == 0)
        self._batches = iter([{input_name: data[i:i + batch]} for i in range(0, len(data), batch)])

    def get_next(self):
        return next(self._batches, None)


@contextlib.contextmanager
def _quiet_root_logger():
    """onnxruntime.quantization logs through the root logger; silence it for the call, then restore it."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_int8(model: onnx.ModelProto, calibration: np.ndarray, *, calibration_label: str,
                  flavor: str = "s8s8", method: str | None = DEFAULT_CALIBRATION_METHOD,
                  keep_float: dict[str, str] | None = None, quantize_attention: bool = False,
                  quantize_classifier: bool = False, quantize_stem: bool = False) -> tuple[onnx.ModelProto, Int8Report]:
    """Quantize a one-input FP32 model with ``calibration`` (N x C x H x W float32, preprocessed) in
    ``flavor`` (``u8s8`` or ``s8s8``, see the module docstring), calibrated by ``method`` (None: the
    flavor's default, ``options.FLAVOR_CALIBRATION_METHOD``)."""
    if flavor not in INT8_FLAVORS:
        raise UsageError(f"unknown INT8 flavor {flavor!r}; valid: {', '.join(INT8_FLAVORS)}")
    method = calibration_method_for(flavor, method)
    if method not in CALIBRATION_METHODS:
        raise UsageError(f"unknown calibration method {method!r}; valid: {', '.join(CALIBRATION_METHODS)}")
    inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(inputs) != 1:
        raise UsageError(f"INT8 calibration takes one image input; this model has {len(inputs)} "
                         f"({', '.join(inputs)}): export it as fp32 or fp16")
    if calibration.ndim != 4 or calibration.dtype != np.float32 or len(calibration) == 0:
        raise UsageError(f"calibration data must be a non-empty N x C x H x W float32 batch, got "
                         f"{calibration.dtype} {list(calibration.shape)}")
    model = onnx.ModelProto.FromString(model.SerializeToString())
    ensure_node_names(model)
    symmetric = flavor == "s8s8"
    report = Int8Report(calibration_label, len(calibration), ["Conv"] if symmetric else ["all ONNX Runtime quantizes"],
                        flavor=flavor, calibration_method=method)
    report.excluded = _exclusions(model, symmetric=symmetric, quantize_attention=quantize_attention,
                                  quantize_classifier=quantize_classifier, quantize_stem=quantize_stem)
    report.excluded.update(keep_float or {})
    quantized = _quantize(model, calibration, report, symmetric=symmetric, method=method)
    copy_name_scopes(model, quantized)  # the quantizer drops them; localization reads them
    report.qdq_pairs = sum(n.op_type == "QuantizeLinear" for n in quantized.graph.node)
    if symmetric:
        nonzero = [t.name for t in quantized.graph.initializer if "zero_point" in t.name
                   and np.any(onnx.numpy_helper.to_array(t) != 0)]
        if nonzero:
            raise CheckFailedError(f"INT8 model has non-zero zero-points ({', '.join(nonzero[:3])}): not symmetric")
    return quantized, report


def _exclusions(model: onnx.ModelProto, *, symmetric: bool, quantize_attention: bool, quantize_classifier: bool,
                quantize_stem: bool) -> dict[str, str]:
    """Node -> why it stays float, by rule: attention always; classifier and stem for ``s8s8``, whose
    symmetric activations lose the stem's raw-pixel range (u8s8's asymmetric ones keep it)."""
    excluded: dict[str, str] = {}
    if not quantize_attention:
        # s8s8 (TensorRT) keeps the whole region float. u8s8 keeps the gate and what follows it
        # (1 + g, a_h * a_w, views) float and quantizes what feeds it (pooling, channel MLP,
        # spatial conv): every float region costs a DQ/Q pair at each edge, and on ONNX Runtime
        # CPU, CBAM ResNet-50 ran 1.76x FP32 with whole regions float against 2.28x with only
        # the gates float (fully quantized: 2.29x), measured interleaved on a quiet 2-core EPYC.
        downstream = None if symmetric else _downstream(model)
        for region in find_attention_regions(model):
            for name in (region.nodes if symmetric else _gate_nodes(region, downstream)):
                excluded[name] = ATTENTION_RULE if symmetric else GATE_RULE
    if symmetric and not quantize_classifier:
        for name in classifier_nodes(model):
            excluded[name] = "final classifier"
    if symmetric and not quantize_stem:
        for name in input_convs(model):
            excluded[name] = "stem convolution (reads the raw input)"
    return excluded


ATTENTION_RULE = "attention region (sigmoid gate and what feeds it)"
GATE_RULE = "attention gate (the sigmoid and what combines it before it multiplies the features)"


def _downstream(model: onnx.ModelProto) -> dict[str, list[str]]:
    """Node name -> the names of the nodes that read its outputs (built once per model)."""
    readers: dict[str, list[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node.name)
    return {n.name: [r for out in n.output for r in readers.get(out, [])] for n in model.graph.node}


def _gate_nodes(region, downstream: dict[str, list[str]]) -> list[str]:
    """The region's gate node and the region's nodes downstream of it (up to the gating multiply)."""
    inside = set(region.nodes)
    found, stack = [], [region.gate]
    while stack:
        name = stack.pop()
        if name in found or name not in downstream:
            continue
        found.append(name)
        stack.extend(r for r in downstream[name] if r in inside)
    return found


#: Entropy (KL) calibration as TensorRT does it: 2048 histogram bins, 128 quantized bins. Why not
#: quantize_static's own: it passes no bin counts, and with its 128/128 default the KL search has a
#: single candidate, the full range, so "entropy" gave exactly min-max's scales (measured, ORT 1.31).
ENTROPY_BINS, ENTROPY_QUANTIZED_BINS = 2048, 128


def _entropy_ranges(model: Path, reader: _Reader, folder: Path, *, symmetric: bool) -> Path:
    """Tensor ranges by ONNX Runtime's entropy calibrator with useful bin counts, as a calibration cache."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator, save_tensors_data

    calibrator = create_calibrator(model, None, augmented_model_path=str(folder / "augmented.onnx"),
                                   calibrate_method=CalibrationMethod.Entropy,
                                   extra_options={"num_bins": ENTROPY_BINS, "num_quantized_bins": ENTROPY_QUANTIZED_BINS,
                                                  "symmetric": symmetric})
    calibrator.collect_data(reader)
    cache = folder / "ranges.json"
    save_tensors_data(calibrator.compute_data(), cache)
    return cache


def _quantize(model: onnx.ModelProto, calibration: np.ndarray, report: Int8Report, *, symmetric: bool,
              method: str) -> onnx.ModelProto:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    input_name = model.graph.input[0].name
    extra = {"ActivationSymmetric": True, "WeightSymmetric": True} if symmetric else {"WeightSymmetric": True}
    if method != "minmax":  # histogram methods: one histogram per tensor over all batches, not per batch
        extra["CalibTensorRangeSymmetric"] = symmetric
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), _quiet_root_logger(), \
            contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        src, pre, dst = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        onnx.save(model, src)
        # Symbolic shape inference crashes on these opset-18 graphs: skip it, keep the rest.
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        names_after = {n.name for n in onnx.load(str(pre)).graph.node}
        excluded = [n for n in report.excluded if n in names_after]
        reader, cache = _Reader(input_name, calibration), None
        try:
            if method == "entropy":
                cache = _entropy_ranges(pre, reader, Path(tmp), symmetric=symmetric)
                reader = None
            quantize_static(
                str(pre), str(dst), reader, calibration_cache_path=cache, quant_format=QuantFormat.QDQ,
                op_types_to_quantize=["Conv"] if symmetric else None, per_channel=True,
                activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8, weight_type=QuantType.QInt8,
                nodes_to_exclude=excluded, calibrate_method=methods[method], extra_options=extra,
            )
        except Exception as exc:
            raise CheckFailedError(f"INT8 quantization failed: {str(exc).splitlines()[0]}") from exc
        return onnx.load(str(dst))
