"""Finding native libraries quietly: which shared libraries a library needs (its ELF ``DT_NEEDED``)
and whether each can be loaded, before anything that would print a raw loader error tries.

ONNX Runtime's CUDA provider, for example, is a shared library that needs cuBLAS, cuRAND and the
CUDA runtime; when one is missing, ONNX Runtime prints ``Failed to load library ...`` and falls back
to the CPU. Checking the same libraries here first turns that into one line naming what is missing.
Libraries from NVIDIA's pip wheels (``site-packages/nvidia/*/lib``) are found too: those folders are
not on the loader's path, and loading a library from there by full path makes the later load by
name (from ONNX Runtime or TensorRT) resolve to it, as ``import torch`` does for its own CUDA build.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys
from functools import lru_cache
from pathlib import Path

# Always present with the C library; never worth probing.
_SYSTEM = ("libc.so", "libm.so", "libdl.so", "librt.so", "libpthread.so", "libstdc++.so", "libgcc_s.so",
           "ld-linux", "libutil.so")


def needed_libraries(path: str | Path) -> list[str]:
    """The ``DT_NEEDED`` sonames of an ELF64 little-endian shared library ([] if it is not one)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return []
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return []
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    dynamic = [s for s in sections if s[1] == 6]  # SHT_DYNAMIC
    if not dynamic:
        return []
    _, _, _, _, offset, size, link, _, _, entsize = dynamic[0]
    strtab = sections[link][4]
    names = []
    for pos in range(offset, offset + size, entsize or 16):
        tag, value = struct.unpack_from("<qQ", data, pos)
        if tag == 0:
            break
        if tag == 1:  # DT_NEEDED
            end = data.index(b"\0", strtab + value)
            names.append(data[strtab + value:end].decode())
    return names


def nvidia_wheel_lib_dirs() -> list[Path]:
    """``site-packages/nvidia/<pkg>/lib`` folders of NVIDIA's CUDA wheels (cuBLAS, cuDNN, runtime...)."""
    found = []
    for entry in sys.path:
        root = Path(entry or ".") / "nvidia"
        if root.is_dir():
            found.extend(sorted(p for p in root.glob("*/lib") if p.is_dir()))
    return found


def _search_dirs() -> list[Path]:
    dirs = [Path(d) for d in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
    dirs += [Path("/usr/local/cuda/lib64"), *nvidia_wheel_lib_dirs()]
    return dirs


@lru_cache(maxsize=None)
def load_library(soname: str) -> str | None:
    """Load ``soname`` (by name, else from the CUDA folders and NVIDIA wheels); where from, or None."""
    try:
        ctypes.CDLL(soname, mode=ctypes.RTLD_GLOBAL)
        return soname
    except OSError:
        pass
    for folder in _search_dirs():
        candidate = folder / soname
        if candidate.is_file():
            try:
                ctypes.CDLL(str(candidate), mode=ctypes.RTLD_GLOBAL)
                return str(candidate)
            except OSError:
                continue
    return None


def missing_libraries(path: str | Path) -> list[str]:
    """The non-system libraries ``path`` needs that cannot be loaded here (each tried quietly)."""
    needed = [n for n in needed_libraries(path) if not n.startswith(_SYSTEM)]
    return [n for n in needed if load_library(n) is None]
