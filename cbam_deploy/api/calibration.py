"""Which INT8 calibration data a command uses for an exported model, decided in one place."""

from __future__ import annotations

import numpy as np

from ..errors import UsageError
from ..layout import is_reference_task
from ..model_dir import ExportedModel


def calibration_for(model: ExportedModel, source: str | None, *, required: bool = False,
                    seed: int = 0) -> tuple[np.ndarray | None, str, str | None]:
    """(batch or None, label, warning) for ``model``: ``source`` as ``--calibration`` takes it.

    Without a source the reference model calibrates on its task's training split; any other model
    gets none (INT8 cells are then skipped with the reason), or a ``UsageError`` when ``required``.
    """
    from ..precision.calibration import REFERENCE, load_calibration

    reference_task = is_reference_task(model.metadata)
    source = source or (REFERENCE if reference_task else None)
    if source is None:
        if required:
            raise UsageError(f"INT8 needs calibration data for {model.name!r}: pass --calibration "
                             "DIR|FILE.npy|synthetic")
        return None, "", None
    pre = model.preprocessing
    return load_calibration(source, input_shape=model.traced_shape, mean=pre.get("mean"), std=pre.get("std"),
                            reference_task=reference_task, seed=seed,
                            channel_order=pre.get("channel_order", "RGB"))
