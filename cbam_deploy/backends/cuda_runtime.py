"""The CUDA runtime through ctypes (``libcudart``): driver and runtime versions, the GPUs, their
compute capability and memory. No torch: the GPU image installs torch's CPU build, so asking
``torch.cuda`` would say "no GPU" on a machine that has one. Nothing here prints; every failure
becomes a reason string or a ``MissingDependencyError`` of one line."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from functools import lru_cache

from ..errors import MissingDependencyError
from .native import load_library

CUDART_SONAMES = ("libcudart.so.13", "libcudart.so.12", "libcudart.so")
_ATTR_CC_MAJOR, _ATTR_CC_MINOR = 75, 76  # cudaDevAttrComputeCapabilityMajor / Minor


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    compute_capability: str  # "9.0"
    total_bytes: int
    free_bytes: int


@dataclass(frozen=True)
class CudaEnvironment:
    library: str  # which libcudart was loaded
    driver_version: str  # "13.0": the newest CUDA the installed driver supports ("" without a driver)
    runtime_version: str  # "13.0": the CUDA runtime library's own version
    gpus: tuple[GpuInfo, ...]
    problem: str = ""  # why no GPU is usable, when gpus is empty


def _version(number: int) -> str:
    return f"{number // 1000}.{(number % 1000) // 10}" if number > 0 else ""


@lru_cache(maxsize=1)
def _cudart() -> tuple[ctypes.CDLL, str] | None:
    for soname in CUDART_SONAMES:
        where = load_library(soname)
        if where is not None:
            return ctypes.CDLL(where), where
    return None


def _error(lib: ctypes.CDLL, status: int) -> str:
    lib.cudaGetErrorString.restype = ctypes.c_char_p
    return (lib.cudaGetErrorString(status) or b"unknown CUDA error").decode()


def _gpu(lib: ctypes.CDLL, index: int) -> GpuInfo:
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.cudaDeviceGetAttribute(ctypes.byref(major), _ATTR_CC_MAJOR, index)
    lib.cudaDeviceGetAttribute(ctypes.byref(minor), _ATTR_CC_MINOR, index)
    # cudaDeviceProp starts with `char name[256]` in every CUDA version; the rest of the struct changes,
    # so the buffer is generously sized and only the name is read.
    props = ctypes.create_string_buffer(8192)
    getter = getattr(lib, "cudaGetDeviceProperties_v2", None) or lib.cudaGetDeviceProperties
    getter(props, index)
    name = props.raw[:256].split(b"\0", 1)[0].decode(errors="replace")
    free, total = ctypes.c_size_t(), ctypes.c_size_t()
    lib.cudaSetDevice(index)
    lib.cudaMemGetInfo(ctypes.byref(free), ctypes.byref(total))
    return GpuInfo(index, name, f"{major.value}.{minor.value}", total.value, free.value)


def probe() -> CudaEnvironment:
    """What the CUDA runtime reports; never raises (``problem`` says why no GPU is usable)."""
    found = _cudart()
    if found is None:
        return CudaEnvironment("", "", "", (), f"CUDA runtime library not found ({CUDART_SONAMES[0]} or "
                                                "libcudart.so.12 on the loader path, in /usr/local/cuda/lib64 or an "
                                                "nvidia-cuda-runtime wheel)")
    lib, where = found
    driver, runtime, count = ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(0)
    lib.cudaDriverGetVersion(ctypes.byref(driver))
    lib.cudaRuntimeGetVersion(ctypes.byref(runtime))
    status = lib.cudaGetDeviceCount(ctypes.byref(count))
    if status != 0:
        why = "no NVIDIA driver (libcuda.so.1) found" if driver.value == 0 else _error(lib, status)
        return CudaEnvironment(where, _version(driver.value), _version(runtime.value), (), f"no usable NVIDIA GPU: {why}")
    if count.value == 0:
        return CudaEnvironment(where, _version(driver.value), _version(runtime.value), (), "no NVIDIA GPU visible")
    gpus = tuple(_gpu(lib, i) for i in range(count.value))
    return CudaEnvironment(where, _version(driver.value), _version(runtime.value), gpus)


def require_gpu(what: str) -> GpuInfo:
    """GPU 0, or ``MissingDependencyError``: '<what> needs an NVIDIA GPU: <why not>'."""
    env = probe()
    if not env.gpus:
        raise MissingDependencyError(f"{what} needs an NVIDIA GPU: {env.problem}")
    return env.gpus[0]


def memory_info(index: int = 0) -> tuple[int, int]:
    """(free, total) bytes on GPU ``index``, as the CUDA runtime reports them now."""
    found = _cudart()
    if found is None:
        raise MissingDependencyError("CUDA runtime library not found: cannot read GPU memory")
    lib = found[0]
    free, total = ctypes.c_size_t(), ctypes.c_size_t()
    lib.cudaSetDevice(index)
    status = lib.cudaMemGetInfo(ctypes.byref(free), ctypes.byref(total))
    if status != 0:
        raise MissingDependencyError(f"cannot read GPU memory: {_error(lib, status)}")
    return free.value, total.value
