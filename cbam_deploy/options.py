"""The names and defaults that commands show in ``--help``, on the ground floor.

Every command's parser is built from these without importing torch or onnx, so ``--help`` and the
Docker health check stay fast. The modules that implement each option import the same names from
here (one source): an option listed here that its stage does not know is a test failure.
"""

from __future__ import annotations

#: Precisions an ONNX file is exported in (cbam-export, cbam-gpu-check).
ONNX_PRECISIONS = ("fp32", "fp16", "int8")
#: Precisions validate/bench run: the file's, plus bf16 where a backend computes it natively from the
#: FP32 ONNX (OpenVINO on CPUs with AVX-512 BF16 or AMX).
PRECISIONS = (*ONNX_PRECISIONS, "bf16")
DYNAMIC_MODES = ("batch", "hw", "all", "none")
DEFAULT_OPSET = 18
MIN_OPSET = 18  # the dynamo exporter's minimum
#: PyTorch's ONNX exporters (cbam-export --exporter); the default is measured, see docs/guides/export.md.
EXPORTERS = ("torchscript", "dynamo")
DEFAULT_EXPORTER = "torchscript"
#: CBAM-aware ONNX rewrites (optimize/onnx_rewrites.py) and the ones applied by default.
REWRITE_NAMES = ("channel_mean_matmul", "global_pooling", "merged_channel_mlp", "channel_mean_conv",
                 "parallel_gate_sum")
DEFAULT_REWRITES = ("parallel_gate_sum",)  # only where it earns its place: optimize_graph(guarded=...)
#: Backends every runner-using command accepts (backends.open_runner implements them).
#: The one list of their names: backends/registry.py collects each package's entry and refuses to
#: import if its table does not match (so --help needs no backend import).
ORT_PROVIDERS = ("cpu", "cuda", "tensorrt")
BACKENDS = (*(f"onnxruntime-{p}" for p in ORT_PROVIDERS), "tensorrt", "openvino")
#: Triton's max_batch_size for an export with a dynamic batch axis.
TRITON_MAX_BATCH = 8
DEFAULT_VARIANT = "original"
DEFAULT_ARCH = "resnet_mini"
#: Where a precision export will run (cbam-export --target); INT8's Q/DQ flavor follows it.
TARGETS = ("onnxruntime-cpu", "onnxruntime-cuda", "openvino", "tensorrt")
DEFAULT_TARGET = "onnxruntime-cpu"
#: INT8 Q/DQ flavors: u8s8 = uint8 asymmetric activations, int8 per-channel weights (x86 integer
#: kernels take uint8 activations); s8s8 = int8 symmetric activations and weights, zero points 0
#: (TensorRT's explicit quantization). Which target gets which is measured: docs/guides/precision.md.
INT8_FLAVORS = ("u8s8", "s8s8")
TARGET_INT8_FLAVOR = {"onnxruntime-cpu": "u8s8", "onnxruntime-cuda": "s8s8", "openvino": "u8s8", "tensorrt": "s8s8"}
#: ONNX Runtime's calibration methods (cbam-export --calibration-method).
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
#: The default per INT8 flavor, from the reference task (docs/guides/precision.md): u8s8 keeps only the
#: gates float and held accuracy best with percentile; s8s8 (whole attention regions float) with minmax.
FLAVOR_CALIBRATION_METHOD = {"u8s8": "percentile", "s8s8": "minmax"}
DEFAULT_CALIBRATION_METHOD = None  # None: FLAVOR_CALIBRATION_METHOD[flavor]


def calibration_method_for(flavor: str, method: str | None) -> str:
    """The calibration method INT8 in ``flavor`` uses: ``method`` when asked for, else the flavor's default."""
    return method or FLAVOR_CALIBRATION_METHOD[flavor]
#: --keep-float's value that chooses the modules by measurement.
KEEP_FLOAT_AUTO = "auto"
#: The INT8 flavor a backend runs fast and correctly (cbam-validate/cbam-bench derive INT8 cells in it).
BACKEND_INT8_FLAVOR = {"onnxruntime-cpu": "u8s8", "onnxruntime-cuda": "s8s8", "onnxruntime-tensorrt": "s8s8",
                       "tensorrt": "s8s8", "openvino": "u8s8"}
