"""The Triton Python-backend model ``cbam-serve`` puts in its model repository (as ``1/model.py``).

Triton's dynamic batcher hands ``execute`` the requests of one batch; each gets its own response
(``InferenceResponse(error=TritonError(..., INVALID_ARG))`` for a malformed one, which Triton
answers with HTTP 400 / gRPC INVALID_ARGUMENT; ``INTERNAL``, a 500, when the model fails), so one
bad request cannot fail the others. Why not PyTriton's infer functions: PyTriton 0.7 answers a
batch with outputs for every request or one exception for all of them (its stub turns the
exception into a traceback-carrying 500 for the whole batch); it has no per-request error.

Runs in Triton's Python stub process, where ``triton_python_backend_utils`` exists (imported in
the methods, so importing this module elsewhere is harmless).
"""

from __future__ import annotations

import json

import numpy as np

from cbam_deploy.serving.executor import Failed, Rejected, one_line, open_executor


class TritonPythonModel:
    """Triton's Python-backend entry points: initialize, execute, finalize."""

    def initialize(self, args: dict) -> None:
        import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]  # only inside Triton

        self.pb = pb_utils
        config = json.loads(args["model_config"])
        parameters = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        try:
            self.executor = open_executor(parameters, max_batch_size=int(config.get("max_batch_size", 0)),
                                          log=pb_utils.Logger.log_warn)
        except Exception as exc:  # one line in Triton's log; cbam-serve reports it and exits
            raise pb_utils.TritonModelException(f"cbam-serve could not open the model: {one_line(exc)}") from None

    def execute(self, requests: list) -> list:
        pb_utils = self.pb
        feeds = [{tensor.name(): tensor.as_numpy() for tensor in request.inputs()} for request in requests]
        responses = []
        for answer in self.executor.execute(feeds):
            if isinstance(answer, Rejected):
                error = pb_utils.TritonError(answer.message, pb_utils.TritonError.INVALID_ARG)
                responses.append(pb_utils.InferenceResponse(error=error))
            elif isinstance(answer, Failed):
                error = pb_utils.TritonError(answer.message, pb_utils.TritonError.INTERNAL)
                responses.append(pb_utils.InferenceResponse(error=error))
            else:
                tensors = [pb_utils.Tensor(name, np.ascontiguousarray(array)) for name, array in answer.items()]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses

    def finalize(self) -> None:
        executor = getattr(self, "executor", None)
        if executor is not None:
            executor.close()
