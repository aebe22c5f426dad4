"""Runs an eval-mode ``nn.Module`` with numpy in and out."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from ...onnx_export.outputs import flatten_outputs
from ..base import Runner, TensorSpec


class TorchRunner(Runner):
    """Eager PyTorch. Forward passes are serialised: modules may keep per-call state (hooks)."""

    name = "torch-eager"

    def __init__(self, model: nn.Module, inputs: Sequence[TensorSpec], output_names: Sequence[str], *,
                 allow_nonfinite: bool = False) -> None:
        super().__init__(allow_nonfinite=allow_nonfinite)
        self.model = model
        self._inputs = list(inputs)
        self._outputs = list(output_names)

    def activate_impl(self) -> None:
        self.model.eval()

    def input_specs(self) -> list[TensorSpec]:
        return self._inputs

    def output_names(self) -> list[str]:
        return self._outputs

    @torch.no_grad()
    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [torch.from_numpy(np.ascontiguousarray(feed[s.name])) for s in self._inputs]
        with self._lock:
            try:
                result = self.model(*args)
            except Exception as exc:  # the model's own code rejects these inputs: its limit, said in one line
                from ...errors import UsageError
                from ...models.user_model import describe_exception

                shapes = ", ".join("x".join(map(str, a.shape)) for a in args)
                raise UsageError(f"the eager PyTorch model fails at input shape {shapes} {describe_exception(exc)} "
                                 "(choose other shapes, e.g. cbam-validate --resolutions)") from exc
        # Outputs of any structure (a detector's dict, nested tuples) in the export's flattening order.
        results = [t for _, t in flatten_outputs(result)]
        if len(results) != len(self._outputs):
            from ...errors import CheckFailedError

            raise CheckFailedError(f"the eager model returned {len(results)} tensors, the export has "
                                   f"{len(self._outputs)} outputs ({', '.join(self._outputs)})")
        return {name: r.detach().cpu().numpy() for name, r in zip(self._outputs, results)}
