"""Where backends run: one folder per backend, each a loader plus a ``Runner``; one table
(``BACKENDS``) and one ``open_runner(backend, model, **options)`` over them all."""

from .base import Runner, TensorSpec, cast_feed, single_input_feed
from .registry import BACKENDS, DEPLOY_BACKENDS, Backend, backend_problem, get_backend, open_runner

__all__ = ["BACKENDS", "DEPLOY_BACKENDS", "Backend", "Runner", "TensorSpec", "backend_problem", "cast_feed",
           "get_backend", "open_runner", "single_input_feed"]
