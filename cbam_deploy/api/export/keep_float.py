"""The export's precision stage wired to the model: module names, range-analysis inputs, the INT8
task gate and the greedy ``--keep-float auto`` search (``precision`` has the graph side).

INT8 ``auto``: start from the attention rule; while the task gate fails, localize (per-module error
of the quantized graph against eager, ``compare.localize``), keep the module whose own error grows
the most in float, quantize again. The gate: on the reference task, held-out accuracy drop <= 1 point
(and top-1 agreement >= 97 %); on a user's model, top-1 agreement >= 97 % (classifiers) and cosine
>= the INT8 table's on calibration inputs held out from calibration (the last quarter).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ...errors import CheckFailedError
from ...options import KEEP_FLOAT_AUTO, TARGET_INT8_FLAVOR, calibration_method_for

MAX_ACCURACY_DROP_POINTS = 1.0
MIN_TOP1_AGREEMENT = 0.97
MAX_AUTO_ROUNDS = 8
_RANGE_SAMPLES = 16
# Measured with `benchmarks/precision_speed.py --repeats 15` (CBAM ResNet-50 `original`, batch 1, ONNX
# Runtime 1.31.1 CPU, quiet 2-core AMD EPYC): FP32 56.0 ms, FP16 65.6 ms (0.79-0.85x over the four
# variants). Re-run it for your CPU.
FP16_CPU_NOTE = ("fp16 for target {target}: it will not be faster there. ONNX Runtime's CPU provider computes most "
                 "FP16 nodes in float32 behind casts (benchmarks/precision_speed.py measured FP16 at {ratio} the "
                 "speed of FP32 on CBAM ResNet-50, 2-core AMD EPYC); use --precision int8 for CPU speed")
FP16_CPU_RATIO = "0.85x"


def precision_stage(proto, options, reporter, *, prepared, plan, built, calibration: np.ndarray | None,
                    calibration_label: str) -> tuple[Any, dict[str, Any]]:
    """FP16 or INT8 of the FP32 graph for ``options.target``, float kept as ``options.keep_float`` says."""
    from ...compare.eager_capture import user_modules
    from ...onnx_export.graph import ensure_node_names
    from ...precision.int8 import FLAVOR_DESCRIPTIONS
    from .precision import ModuleMap, fp16_stage, int8_stage

    ensure_node_names(proto)
    mapping = ModuleMap.of(proto, user_modules(prepared.eager))
    if options.precision == "fp16":
        if options.target == "onnxruntime-cpu":
            reporter.note(FP16_CPU_NOTE.format(target=options.target, ratio=FP16_CPU_RATIO))
        elif options.target == "openvino":
            reporter.note("fp16 for target openvino: OpenVINO's CPU plugin computes in its own inference precision "
                          "(f32, or bf16 where the CPU has it), not in the file's FP16, so FP16 will not make it faster "
                          "(not measured by this project); use --precision int8 for CPU speed")
        feeds = list(plan.feeds)
        if calibration is not None and len(prepared.input_names) == 1:
            feeds += [{prepared.input_names[0]: calibration[i:i + 4]} for i in range(0, min(len(calibration), _RANGE_SAMPLES), 4)]
        with reporter.stage("fp16", "range analysis of the FP32 graph; attention and out-of-range modules kept FP32"):
            return fp16_stage(proto, keep_io_types=options.keep_io_types, keep_float=list(options.keep_float),
                              mapping=mapping, feeds=feeds)
    flavor = TARGET_INT8_FLAVOR[options.target]
    auto = KEEP_FLOAT_AUTO in options.keep_float
    fit = calibration
    search = None
    if auto:
        gate = _gate(proto, prepared, built, calibration)
        fit = calibration if built.reference_task else calibration[: max(1, len(calibration) * 3 // 4)]
        search = lambda quantize, kept: greedy_int8(quantize, kept, gate, mapping, prepared, reporter)  # noqa: E731
    with reporter.stage("int8", f"Q/DQ {flavor} ({FLAVOR_DESCRIPTIONS[flavor]}) for {options.target}; calibration: "
                        f"{calibration_label}, {calibration_method_for(flavor, options.calibration_method)}"):
        return int8_stage(proto, fit, calibration_label=calibration_label, target=options.target,
                          method=options.calibration_method, keep_float=list(options.keep_float), mapping=mapping,
                          auto_search=search)


@dataclass
class GateResult:
    passed: bool
    summary: str
    values: dict[str, float]


def _gate(proto, prepared, built, calibration: np.ndarray) -> Callable[[bytes], GateResult]:
    """The task gate for ``--keep-float auto``: eager's answers computed once, the candidate's per call."""
    import torch

    from ...backends import open_runner
    from ...backends.base import cast_feed

    if built.reference_task:
        from ...reference.evaluate import heldout_batch

        x, labels = heldout_batch(1000)
    else:
        x, labels = calibration[max(1, len(calibration) * 3 // 4):], None
        if len(x) == 0:
            raise CheckFailedError("--keep-float auto needs at least 2 calibration samples (some are held out)")
    with torch.no_grad():
        ref = np.concatenate([prepared.eager(torch.from_numpy(x[i:i + 100]))[0].float().numpy()
                              for i in range(0, len(x), 100)])
    classifier = ref.ndim == 2 and ref.shape[1] > 1
    name = prepared.input_names[0]

    def gate(model: bytes) -> GateResult:
        with open_runner("onnxruntime-cpu", model, spinning=False) as runner:
            got = np.concatenate([next(iter(runner.infer(cast_feed(runner, {name: x[i:i + 100]})).values()))
                                  for i in range(0, len(x), 100)]).astype(np.float32)
        a, b = got.reshape(len(x), -1), ref.reshape(len(x), -1)
        cosine = float(np.mean((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)))
        values = {"cosine": cosine}
        ok = cosine >= 0.99
        if classifier:
            values["top1_agreement"] = float((got.argmax(1) == ref.argmax(1)).mean())
            ok = ok and values["top1_agreement"] >= MIN_TOP1_AGREEMENT
        if labels is not None:
            values["accuracy_drop_points"] = 100 * float((ref.argmax(1) == labels).mean() - (got.argmax(1) == labels).mean())
            ok = values["accuracy_drop_points"] <= MAX_ACCURACY_DROP_POINTS and values["top1_agreement"] >= MIN_TOP1_AGREEMENT
        summary = ", ".join(f"{k} {v:.4g}" for k, v in values.items())
        return GateResult(ok, summary, values)

    return gate


def greedy_int8(quantize, kept, gate, mapping, prepared, reporter):
    """Add modules, worst own error first, until ``gate`` passes; the rounds are recorded."""
    from ..localize import localize

    quantized, report = quantize(kept)
    first_bytes = quantized.SerializeToString()
    rounds = []
    for _ in range(MAX_AUTO_ROUNDS + 1):
        result = gate(quantized.SerializeToString())
        rounds.append({"kept_float": list(kept.modules), **result.values})
        if result.passed:
            break
        if len(rounds) > MAX_AUTO_ROUNDS:
            raise CheckFailedError(f"--keep-float auto: the INT8 task gate still fails ({result.summary}) after keeping "
                                   f"{', '.join(kept.modules) or 'nothing'} in float; try --target tensorrt's s8s8, "
                                   "another --calibration-method, or --precision fp16")
        feed = {prepared.input_names[0]: prepared.inputs[0].numpy()}
        loc = localize(quantized, prepared.eager, feed, precision="int8")
        module, growth = _worst_module(loc.modules, kept.modules, mapping)
        if module is None:
            raise CheckFailedError(f"--keep-float auto: the INT8 task gate fails ({result.summary}) and localization "
                                   "names no further module to keep in float")
        kept.add(module, "error", f"largest own error growth ({growth:.3g} scaled) while the gate failed: {result.summary}")
        reporter.note(f"--keep-float auto: keeping {module} in float (gate: {result.summary})")
        quantized, report = quantize(kept)
    extra = {"keep_float_auto": {"gate": rounds[-1], "rounds": rounds}}
    if len(rounds) > 1:
        extra["keep_float_auto"]["speed_cost"] = _speed_cost(first_bytes, quantized.SerializeToString(), prepared)
    return quantized, report, extra


def _worst_module(errors, kept: dict, mapping) -> tuple[str | None, float]:
    """The leaf module with quantized nodes whose output error grows most over the one before it."""
    best, growth, previous = None, -1.0, 0.0
    for e in errors:  # eager's completion order
        own = e.scaled_error - previous
        previous = e.scaled_error if np.isfinite(e.scaled_error) else previous
        leaf = not any(m.startswith(e.module + ".") for m in mapping.nodes)
        if leaf and e.module in mapping.nodes and e.module not in kept and own > growth:
            best, growth = e.module, own
    return best, growth


def _speed_cost(before: bytes, after: bytes, prepared) -> dict[str, Any]:
    """ONNX Runtime CPU median latency at the example input, the rule-only INT8 against the final one:
    20 interleaved runs each, spinning off (cheap, indicative; benchmarks/ for real figures)."""
    from ...backends import open_runner
    from ...backends.base import cast_feed
    from ...bench import time_interleaved

    feed = {prepared.input_names[0]: prepared.inputs[0].numpy()}
    with open_runner("onnxruntime-cpu", before, spinning=False) as a, open_runner("onnxruntime-cpu", after, spinning=False) as b:
        fa, fb = cast_feed(a, feed), cast_feed(b, feed)
        t = time_interleaved({"rules": lambda: a.infer(fa), "auto": lambda: b.infer(fb)}, batch=1, warmup=3, runs=20)
    rules, auto = t["rules"].p50, t["auto"].p50
    return {"method": "ONNX Runtime CPU, batch of the example input, 20 interleaved runs, medians",
            "rules_only_ms": round(rules * 1e3, 3), "with_kept_modules_ms": round(auto * 1e3, 3),
            "slowdown": round(auto / rules, 3), "measured_at": time.strftime("%Y-%m-%d %H:%M")}
