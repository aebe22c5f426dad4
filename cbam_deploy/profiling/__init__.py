"""Latency attributed to the user's PyTorch modules and to each attention block (``cbam-bench --profile``).

Stages: a backend's profiler measures per-node times (:mod:`.ort`, :mod:`.openvino`, :mod:`.tensorrt`),
:mod:`.attribution` charges each executed node to a module by a stated rule, :mod:`.report` rolls
them up by module tree, attention block and stage, :mod:`.ablation` checks the attention share by
timing the same graph with its attention bypassed.
"""

from .attribution import RULE, Attribution
from .profile import BACKENDS, profile_model
from .report import BlockTime, ProfileReport

__all__ = ["BACKENDS", "RULE", "Attribution", "BlockTime", "ProfileReport", "profile_model"]
