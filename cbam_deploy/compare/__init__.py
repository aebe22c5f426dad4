"""Parity: backend outputs against PyTorch eager, judged by the one tolerance table."""

from .parity import OutputComparison, ParityCase, ParityReport, compare_output, compare_runners
from .tolerances import TOLERANCES, Tolerance, tolerance_for

__all__ = ["TOLERANCES", "OutputComparison", "ParityCase", "ParityReport", "Tolerance", "compare_output", "compare_runners",
           "tolerance_for"]
