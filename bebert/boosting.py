"""The arithmetic of BEBERT's boosting: SAMME rounds, weighted resampling, the alpha-weighted vote.

BEBERT trains each ensemble member on the training set resampled with the current AdaBoost sample
weights, then scores the member on the (un-resampled) training set to get its weighted error and
its vote weight alpha, and raises the weight of the rows it got wrong. For k classes this is
SAMME (Zhu et al. 2009), the rule scikit-learn's AdaBoostClassifier uses:

    error  = sum(w * wrong) / sum(w)
    alpha  = learning_rate * (log((1 - error) / error) + log(k - 1))
    w_new  = w * exp(alpha * wrong), renormalized to sum to 1

A member no better than chance (error >= 1 - 1/k) gets no vote, and one with error 0 would get an
infinite one; both end the boosting, as in scikit-learn.

For regression (STS-B) it is AdaBoost.R2 (Drucker 1997) with the linear loss, the rule of
scikit-learn's AdaBoostRegressor:

    loss   = |prediction - label| / max |prediction - label|       per row, in [0, 1]
    error  = sum(w * loss) / sum(w);   beta = error / (1 - error)
    alpha  = learning_rate * log(1 / beta)
    w_new  = w * beta ** ((1 - loss) * learning_rate), renormalized

and the members are joined by the alpha-weighted median. NumPy only, so the simulator can join
members with the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import BebertError


@dataclass(frozen=True)
class BoostRound:
    error: float  # weighted training error of the member, in [0, 1]
    alpha: float  # its vote weight
    weights: np.ndarray  # the sample weights for the next round (sum 1)
    stop: bool  # True when boosting cannot continue (perfect member, or no better than chance)


def uniform_weights(n: int) -> np.ndarray:
    if n < 1:
        raise BebertError(f"Boosting needs at least one training row, not {n}.")
    return np.full(n, 1.0 / n)


def samme_round(weights: np.ndarray, correct: np.ndarray, num_classes: int, learning_rate: float = 1.0) -> BoostRound:
    """One SAMME update from the current sample weights and which rows the new member got right."""
    if num_classes < 2:
        raise BebertError(f"SAMME needs at least two classes, not {num_classes}.")
    weights = np.asarray(weights, dtype=np.float64)
    wrong = ~np.asarray(correct, dtype=bool)
    if weights.shape != wrong.shape:
        raise BebertError(f"Sample weights ({weights.shape}) and member results ({wrong.shape}) differ in shape.")
    error = float(weights[wrong].sum() / weights.sum())
    if error <= 0.0:
        return BoostRound(0.0, 1.0, weights / weights.sum(), stop=True)  # scikit-learn's weight for a perfect fit
    if error >= 1.0 - 1.0 / num_classes:
        return BoostRound(error, 0.0, weights / weights.sum(), stop=True)
    alpha = learning_rate * (np.log((1.0 - error) / error) + np.log(num_classes - 1.0))
    updated = weights * np.exp(alpha * wrong)
    return BoostRound(error, float(alpha), updated / updated.sum(), stop=False)


def r2_round(weights: np.ndarray, abs_errors: np.ndarray, learning_rate: float = 1.0) -> BoostRound:
    """One AdaBoost.R2 update from the current sample weights and the new member's |error| per row."""
    weights = np.asarray(weights, dtype=np.float64)
    abs_errors = np.abs(np.asarray(abs_errors, dtype=np.float64))
    if weights.shape != abs_errors.shape:
        raise BebertError(f"Sample weights ({weights.shape}) and member errors ({abs_errors.shape}) differ in shape.")
    weights = weights / weights.sum()
    largest = abs_errors.max()
    if largest <= 0.0:
        return BoostRound(0.0, 1.0, weights, stop=True)  # a perfect fit, as scikit-learn scores it
    loss = abs_errors / largest
    error = float((weights * loss).sum())
    if error >= 0.5:
        return BoostRound(error, 0.0, weights, stop=True)
    beta = error / (1.0 - error)
    alpha = learning_rate * np.log(1.0 / beta)
    updated = weights * np.power(beta, (1.0 - loss) * learning_rate)
    return BoostRound(error, float(alpha), updated / updated.sum(), stop=False)


def resample(weights: np.ndarray, rng: np.random.Generator, size: int | None = None) -> np.ndarray:
    """Row indices drawn with replacement in proportion to the sample weights (BEBERT's resampling)."""
    weights = np.asarray(weights, dtype=np.float64)
    return rng.choice(len(weights), size=len(weights) if size is None else size, replace=True,
                      p=weights / weights.sum())


def weighted_vote(predictions: np.ndarray, alphas: np.ndarray, num_classes: int) -> np.ndarray:
    """The ensemble's class per row: argmax over classes of the summed alphas of members voting for it.

    predictions: (members, rows) class indices. Ties go to the lowest class index (numpy argmax).
    """
    predictions = np.asarray(predictions)
    alphas = np.asarray(alphas, dtype=np.float64)
    if predictions.ndim != 2 or predictions.shape[0] != alphas.shape[0]:
        raise BebertError(f"Votes need (members, rows) predictions and one alpha per member, "
                          f"not {predictions.shape} and {alphas.shape}.")
    scores = np.zeros((predictions.shape[1], num_classes))
    for alpha, votes in zip(alphas, predictions):
        scores[np.arange(votes.shape[0]), votes] += alpha
    return scores.argmax(axis=1)


def weighted_median(values: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Per row, the member value at which the cumulative alpha (members sorted by value) first reaches
    half the total: AdaBoost.R2's way of joining regressors. values: (members, rows)."""
    values = np.asarray(values, dtype=np.float64)
    alphas = np.asarray(alphas, dtype=np.float64)
    order = np.argsort(values, axis=0, kind="stable")  # (members, rows)
    cumulative = np.cumsum(alphas[order], axis=0)
    first = (cumulative >= 0.5 * cumulative[-1]).argmax(axis=0)
    rows = np.arange(values.shape[1])
    return values[order[first, rows], rows]


def combine_members(outputs: np.ndarray, alphas, combine: str, regression: bool) -> np.ndarray:
    """The ensemble's prediction per row from every member's outputs (members, rows, labels).

    ``vote``: alpha-weighted class vote (weighted median for regression); ``logits``: argmax of the
    alpha-weighted sum of the members' logits (weighted mean for regression).
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    alphas = np.asarray(alphas, dtype=np.float64)
    if outputs.ndim != 3 or outputs.shape[0] != alphas.shape[0] or outputs.shape[0] == 0:
        raise BebertError(f"Joining members needs (members, rows, labels) outputs and one alpha per member, "
                          f"not {outputs.shape} and {alphas.shape}.")
    if combine == "vote":
        if regression:
            return weighted_median(outputs[..., 0], alphas)
        return weighted_vote(outputs.argmax(-1), alphas, outputs.shape[-1])
    if combine == "logits":
        summed = np.tensordot(alphas, outputs, axes=1)  # (rows, labels)
        return summed[:, 0] / alphas.sum() if regression else summed.argmax(-1)
    raise BebertError(f"Members are joined by 'vote' or 'logits', not {combine!r}.")
