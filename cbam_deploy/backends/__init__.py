"""Where backends run: one folder per backend, each a loader plus a ``Runner``."""

from .base import Runner, TensorSpec, cast_feed, single_input_feed

__all__ = ["Runner", "TensorSpec", "cast_feed", "single_input_feed"]
