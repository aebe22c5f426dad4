"""Accuracy evaluation: exact on known predictors, and agreement/logit error against a reference."""

from __future__ import annotations

import numpy as np

from cbam_deploy.reference.dataset import CLASSES
from cbam_deploy.reference.evaluate import evaluate_heldout, heldout_batch


def oracle(count):
    _, labels = heldout_batch(count)
    table = {}

    def predict(x):
        # A predictor that knows the labels, found by matching each image: 100% by construction.
        logits = np.zeros((len(x), len(CLASSES)), np.float32)
        for i, img in enumerate(x):
            logits[i, table[img.tobytes()]] = 1.0
        return logits

    xs, _ = heldout_batch(count)
    for img, label in zip(xs, labels):
        table[img.tobytes()] = int(label)
    return predict


def test_perfect_predictor_scores_one_and_constant_predictor_scores_one_fifth():
    assert evaluate_heldout(oracle(50), count=50, batch_size=7).top1 == 1.0
    constant = evaluate_heldout(lambda x: np.tile(np.eye(len(CLASSES))[0], (len(x), 1)), count=50)
    assert constant.top1 == 0.2  # classes are balanced


def test_agreement_and_logit_error_against_reference():
    perfect = oracle(50)
    noisy = evaluate_heldout(lambda x: perfect(x) * 0.9, reference=perfect, count=50)
    assert noisy.top1_agreement == 1.0 and noisy.accuracy_drop_points == 0.0
    assert abs(noisy.max_scaled_logit_error - 0.1) < 1e-6
    wrong = evaluate_heldout(lambda x: np.roll(perfect(x), 1, axis=1), reference=perfect, count=50)
    assert wrong.top1_agreement == 0.0 and wrong.accuracy_drop_points == 100.0
