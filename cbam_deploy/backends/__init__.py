"""Where backends run: one folder per backend, each a loader plus a ``Runner``."""

from .base import Runner, TensorSpec, single_input_feed

__all__ = ["Runner", "TensorSpec", "single_input_feed"]
