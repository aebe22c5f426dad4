"""Serving: the Triton model-repository config (``triton_config``) and ``cbam-serve``, a real
Triton Inference Server through PyTriton with a cbam-deploy runner behind it (``server``)."""
