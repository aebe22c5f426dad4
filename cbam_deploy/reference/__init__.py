"""The reference task: a generated shapes dataset, training, shipped checkpoints, evaluation."""

from .dataset import CLASSES, IMAGE_SIZE, generate, make_sample, sample_at, write_png_folder
from .evaluate import AccuracyReport, evaluate_heldout, heldout_batch

__all__ = ["CLASSES", "IMAGE_SIZE", "AccuracyReport", "evaluate_heldout", "generate", "heldout_batch",
           "make_sample", "sample_at", "write_png_folder"]
