"""Fixed-point primitives of the integer datapath (docs/datapath.md, "Number formats").

Every value between the matrix products is an integer. Hidden states (the residual stream and the
LayerNorm outputs) are two's complement fixed point with FRAC fractional bits: the integer h
stands for h / 2^FRAC. Runtime rounding is always "half up" on integers (add half, shift right
arithmetically), which hardware gets for free; constants computed once from the artifact's float32
parameters (in float64) round half to even, as NumPy does.
"""

from __future__ import annotations

import numpy as np

FRAC = 24  # fractional bits of hidden states (resolution 6e-8, near float32's at these magnitudes)
LN_VAR_SHIFT = 4  # LayerNorm squares deviations at FRAC - 4 fractional bits (keeps the sum in 63 bits)
LN_NORM_BITS = 61  # the variance is shifted left (by an even amount) to hold about this many bits
LN_RECIP = 55  # the LayerNorm reciprocal is round(2^LN_RECIP / s), s the normalized root (31 bits)
LN_VAR_FLOOR = 1  # the variance is at least one unit, 2^-2(FRAC - LN_VAR_SHIFT) = 9e-13: LayerNorm's epsilon
LN_INPUT_BITS = 34  # widest LayerNorm input (hidden state) whose arithmetic int64 holds exactly
EXP_FRAC = 24  # fractional bits of the softmax exponentials (exp(0) = 2^24)
PROB_FRAC = 24  # fractional bits of the attention-probability quantizer step
ALPHA_FRAC = 12  # fractional bits of the ensemble's member weights
MULT_BITS = 30  # a float multiplier m becomes M * 2^-S with 2^(MULT_BITS-1) <= M < 2^MULT_BITS


def round_shift(value, shift: int):
    """value / 2^shift rounded half up (an arithmetic right shift after adding half)."""
    value = np.asarray(value, dtype=np.int64)
    if shift <= 0:
        return value << -shift
    return (value + (1 << (shift - 1))) >> shift


def round_shift_each(value, shift):
    """round_shift with a (broadcast) array of positive shifts."""
    value = np.asarray(value, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    return (value + (np.int64(1) << (shift - 1))) >> shift


def round_div(value, divisor):
    """value / divisor rounded half up, for a positive integer divisor: floor((2 value + d) / (2 d))."""
    value = np.asarray(value, dtype=np.int64)
    divisor = np.asarray(divisor, dtype=np.int64)
    return (2 * value + divisor) // (2 * divisor)


def mean_square_floor(c, width: int):
    """floor(sum(c^2) / width) over the last axis, exactly, for |c| < 2^31 (NumPy or torch int64).

    A row's squares (each below 2^62) can sum past 2^63, so they are summed in two 32-bit limbs and
    the division is carried from the high limb into the low one."""
    square = c * c
    high, low = (square >> 32).sum(-1), (square & 0xFFFFFFFF).sum(-1)
    return (high // width << 32) + ((high % width << 32) + low) // width


def isqrt(value):
    """floor(sqrt(value)) of non-negative int64 values, exactly (float estimate, then corrected)."""
    value = np.asarray(value, dtype=np.int64)
    if np.any(value < 0):
        raise ValueError("isqrt of a negative value")
    root = np.floor(np.sqrt(value.astype(np.float64))).astype(np.int64)
    root -= (root * root > value)
    root += ((root + 1) * (root + 1) <= value)
    return root


def bit_length(value) -> np.ndarray:
    """Bits needed to write each non-negative int64 (0 for 0): a leading-zero count in hardware."""
    value = np.asarray(value, dtype=np.int64)
    estimate = np.where(value > 0, np.floor(np.log2(np.maximum(value, 1).astype(np.float64))).astype(np.int64) + 1, 0)
    one = np.int64(1)
    estimate += (value >= (one << np.minimum(estimate, 62)))  # float log2 can fall one short ...
    estimate -= (estimate > 0) & (value < (one << np.maximum(estimate - 1, 0)))  # ... or one long
    return estimate


def to_fixed(x, frac: int = FRAC) -> np.ndarray:
    """A float constant as the nearest fixed-point integer with ``frac`` fractional bits."""
    return np.round(np.asarray(x, dtype=np.float64) * 2.0**frac).astype(np.int64)


def multiplier(m) -> tuple[np.ndarray, int]:
    """Positive float multipliers m (one or per channel) as integers M and one shift S: m ~ M / 2^S.

    S is chosen for the largest m so that it fits MULT_BITS bits; smaller ones share the shift.
    """
    m = np.asarray(m, dtype=np.float64)
    if np.any(m <= 0) or not np.all(np.isfinite(m)):
        raise ValueError("fixed-point multipliers must be positive and finite")
    shift = MULT_BITS - 1 - int(np.floor(np.log2(m.max())))
    big = np.round(m * 2.0**shift).astype(np.int64)
    if big.max() >= 2**MULT_BITS:  # rounding carried into one more bit
        shift -= 1
        big = np.round(m * 2.0**shift).astype(np.int64)
    return big, shift
