"""Serving: the Triton model-repository config (``triton_config``) and ``cbam-serve``, a real Triton
Inference Server (the binary the nvidia-pytriton wheel carries) with a cbam-deploy runner behind it
(``server``, ``triton_process``, ``triton_model``, ``executor``: per-request checks in ``requests``);
``process`` and ``load_test`` drive it from tests and benchmarks; ``health`` is the Docker check."""
