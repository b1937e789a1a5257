"""Checkpoint selection on held-out training rows: the split, and the score a stage is judged by.

``selection_split`` holds a seeded, stratified fraction of the training rows out of training (by
class; by whole-point score bin for STS-B's regression), identical on every rerun with the same
seed. A :class:`Selector` scores a model on those rows; a stage keeps its best-scoring checkpoint.
The score is the task's GLUE metric for stages that train the classifier, and the negative
held-out loss for hidden-state distillation, whose classifier is frozen: there the metric would
judge the frozen head rather than what the stage learns. Dev never enters a choice.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from . import glue
from .data import EncodedSplit, inference_batches
from .objectives import hidden_kd_loss
from .train import predict

STSB_BINS = 5  # scores 0..5 in whole-point bins, the top score joining the last bin


def selection_split(labels: np.ndarray, regression: bool, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows trained on, rows held out for selection): sorted, disjoint indices covering every row."""
    labels = np.asarray(labels)
    strata = np.minimum(np.floor(labels), STSB_BINS - 1).astype(np.int64) if regression else labels
    trained, held = train_test_split(np.arange(len(labels)), test_size=fraction, random_state=seed, stratify=strata)
    return np.sort(trained), np.sort(held)


def rows_digest(rows: np.ndarray) -> str:
    """SHA-256 of the row indices (int64, little-endian): names a selection split in a manifest."""
    return hashlib.sha256(np.asarray(rows, dtype="<i8").tobytes()).hexdigest()


@dataclass
class Selector:
    """Scores a model on the held-out rows; higher is better, and an undefined metric is the worst."""

    rows: EncodedSplit
    task: str
    every: int

    def score(self, model, objective: str, teacher=None) -> float:
        if objective == "kd_hidden":
            return -self._hidden_loss(model, teacher)
        predictions = predict(model, self.rows, self.task)
        with warnings.catch_warnings():  # a constant prediction has no correlation: scored as the worst
            warnings.simplefilter("ignore")
            value = glue.score(self.task, predictions, self.rows.labels)
        return -math.inf if math.isnan(value) else value

    @torch.no_grad()
    def _hidden_loss(self, model, teacher) -> float:
        """The stage's own loss over the held-out rows, each batch weighted by its row count."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        total = 0.0
        for idx, batch in inference_batches(self.rows, 64):
            inputs = [batch[k].to(device) for k in ("input_ids", "attention_mask", "token_type_ids")]
            total += len(idx) * float(hidden_kd_loss(model(*inputs), teacher(*inputs), inputs[1]))
        model.train(was_training)
        return total / len(self.rows)
