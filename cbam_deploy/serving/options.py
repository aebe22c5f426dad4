"""Constants ``cbam-serve --help`` shows, in a module that imports nothing heavy."""

from __future__ import annotations

from ..options import BACKENDS

#: backends.DEPLOY_BACKENDS: the ground floor's one list of names (--help imports no backend).
SERVE_BACKENDS = BACKENDS
DEFAULT_QUEUE_DELAY_US = 500
DEFAULT_EXIT_TIMEOUT_S = 4  # in-flight requests' time to finish on SIGTERM (the whole stop stays under 10 s)
