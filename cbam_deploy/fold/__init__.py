"""Where BatchNorm folding happens: Conv/Linear -> BatchNorm pairs found in the traced graph."""

from .batchnorm import FoldReport, fold_batchnorms

__all__ = ["FoldReport", "fold_batchnorms"]
