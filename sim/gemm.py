"""Binary matrix products on bit-packed operands: the arithmetic of the XNOR-popcount PE array.

Operands use the project's packing (bebert.bitpack): +1 is bit 1, -1 is bit 0, bit i of word j is
element 64 j + i, padding bits are 0. Two engines compute the same integers:

* **literal** works on the packed 64-bit words as the hardware does. For +-1 vectors a, w of
  length K, XNOR counts agreements, so dot(a, w) = 2 popcount(XNOR(a, w)) - K = K - 2 popcount(a XOR w).
  The XOR form needs no mask for the padding bits: they are 0 in both operands, so they never differ.
* **fast** unpacks to +-1 and multiplies in float32 BLAS. Every partial sum is an integer of
  magnitude at most K, and float32 represents every integer up to 2^24 exactly, so the result is
  exact for K <= 2^24 (checked).

Multi-bit activations (BinaryBERT's 1-1-4) run bit-serially, as the PE array does: a b-bit two's
complement activation x = -2^(b-1) x_(b-1) + sum_(j < b-1) 2^j x_j is split into bit planes x_j in
{0, 1}; each plane meets the weight bits by AND-popcount,

    dot(x_j, w) = popcount(x_j AND w_bits) - popcount(x_j AND NOT w_bits) = 2 popcount(x_j AND w_bits) - popcount(x_j),

and the planes are shifted and added, the sign plane subtracted. Unsigned activations (attention
probabilities) have no sign plane.

NumPy only: the simulator and the hardware flow never import torch.
"""

from __future__ import annotations

import numpy as np

from bebert import bitpack

ENGINES = ("literal", "fast")
FLOAT32_EXACT = 2**24  # largest K for which float32 sums of +-1 products stay exact


def accumulator_bits(k: int, activation_bits: int = 1, signed: bool = True) -> int:
    """Width of a two's complement accumulator that holds any dot product of length k.

    1-bit (+-1) activations: |dot| <= k. b-bit activations against +-1 weights: the result lies in
    [-k * 2^(b-1), k * 2^(b-1)] for signed codes and [-k (2^b - 1), k (2^b - 1)] for unsigned ones.
    """
    if k < 1 or activation_bits < 1:
        raise ValueError(f"accumulator needs k >= 1 and activation_bits >= 1, not k={k}, bits={activation_bits}")
    if activation_bits == 1:
        bound = k
    elif signed:
        bound = k * 2 ** (activation_bits - 1)
    else:
        bound = k * (2**activation_bits - 1)
    return int(bound).bit_length() + 1  # + sign bit


def _check_packed(a: np.ndarray, w: np.ndarray, k: int) -> None:
    if a.dtype != np.uint64 or w.dtype != np.uint64:
        raise TypeError(f"packed operands must be uint64 words, not {a.dtype} and {w.dtype}")
    words = bitpack.words_for(k)
    if a.ndim != 2 or w.ndim != 2 or a.shape[1] != words or w.shape[1] != words:
        raise ValueError(f"packed operands must be (rows, {words}) words for K={k}, not {a.shape} and {w.shape}")


def xnor_popcount(a: np.ndarray, w: np.ndarray, k: int, engine: str = "literal") -> np.ndarray:
    """(M, N) int32 dot products of M packed +-1 rows ``a`` with N packed +-1 rows ``w``, length k."""
    _check_packed(a, w, k)
    if engine == "literal":
        return k - 2 * _popcount_product(a, w, k, np.bitwise_xor).astype(np.int32)
    if engine == "fast":
        if k > FLOAT32_EXACT:
            raise ValueError(f"the fast engine is exact only for K <= 2^24, not {k}")
        a_pm = bitpack.unpack_signs(a, k, dtype=np.float32)
        w_pm = bitpack.unpack_signs(w, k, dtype=np.float32)
        return (a_pm @ w_pm.T).astype(np.int32)
    raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")


def _popcount_product(a: np.ndarray, w: np.ndarray, k: int, combine) -> np.ndarray:
    """(M, N) sums over words of popcount(combine(a word, w word)), one 64-bit word column at a time.

    Word-serial like the PE array's SIMD lanes: each step combines one word of every row of ``a``
    with the same word of every row of ``w`` into an (M, N) plane and adds its popcounts, so the
    temporaries stay (M, N) and NumPy's loops run long and contiguous.
    """
    counts = np.zeros((a.shape[0], w.shape[0]), dtype=np.uint16 if k < 2**16 else np.uint32)
    words = np.empty(counts.shape, dtype=np.uint64)
    plane = np.empty(counts.shape, dtype=np.uint8)
    w_by_word = np.ascontiguousarray(w.T)
    for j in range(a.shape[1]):
        combine(a[:, j, None], w_by_word[j][None, :], out=words)
        np.bitwise_count(words, out=plane)
        np.add(counts, plane, out=counts)
    return counts


def bit_planes(codes: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    """(bits, M, words) packed bit planes of integer activation codes (M, K), plane j = bit j."""
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    codes = np.asarray(codes)
    if codes.size and (codes.min() < lo or codes.max() > hi):
        raise ValueError(f"activation codes must lie in [{lo}, {hi}] for {bits}-bit "
                         f"{'signed' if signed else 'unsigned'}, found [{codes.min()}, {codes.max()}]")
    twos = codes.astype(np.int64) & ((1 << bits) - 1)  # two's complement bit pattern
    return np.stack([bitpack.pack_bits(((twos >> j) & 1).astype(np.uint8)) for j in range(bits)])


def plane_weights(bits: int, signed: bool) -> np.ndarray:
    """The value of each bit plane: 2^j, and -2^(b-1) for the sign plane of a signed code."""
    weights = np.array([1 << j for j in range(bits)], dtype=np.int64)
    if signed:
        weights[-1] = -weights[-1]
    return weights


def bitserial_matmul(codes: np.ndarray, w: np.ndarray, k: int, bits: int, signed: bool,
                     engine: str = "literal") -> np.ndarray:
    """(M, N) int32 products of b-bit integer activation codes (M, K) with packed +-1 weights (N, words).

    literal: bit planes, AND-popcount per plane, shift-add with the sign plane subtracted (the PE
    array's schedule, one plane per pass). fast: one float32 product of the codes with the unpacked
    weights, exact while K * max|code| <= 2^24.
    """
    planes = bit_planes(codes, bits, signed)
    for plane in planes:
        _check_packed(plane, w, k)
    if engine == "literal":
        out = np.zeros((planes.shape[1], w.shape[0]), dtype=np.int64)
        for value, plane in zip(plane_weights(bits, signed), planes):
            ones = _popcount_product(plane, w, k, np.bitwise_and).astype(np.int64)
            out += value * (2 * ones - np.bitwise_count(plane).sum(axis=-1, dtype=np.int64)[:, None])
        return out.astype(np.int32)
    if engine == "fast":
        largest = 2 ** (bits - 1) if signed else 2**bits - 1
        if k * largest > FLOAT32_EXACT:
            raise ValueError(f"the fast engine is exact only for K * {largest} <= 2^24, not K = {k}")
        return (np.asarray(codes, dtype=np.float32) @ bitpack.unpack_signs(w, k, np.float32).T).astype(np.int32)
    raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")


def codes_matmul(a: np.ndarray, a_bits: int, a_signed: bool, b: np.ndarray, b_bits: int, b_signed: bool,
                 engine: str = "literal") -> np.ndarray:
    """(M, N) int64 products of integer codes a (M, K) with integer codes b (N, K): both operands
    multi-bit, as in the attention products (Q.K^T, P.V) of the 1-1-4 setting.

    literal: every pair of bit planes meets by AND-popcount, weighted 2^i * 2^j (negative for one
    sign plane, positive for two); fast: one float32 product, exact while K * max|a| * max|b| <= 2^24.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"code products need (M, K) and (N, K) operands, not {a.shape} and {b.shape}")
    k = a.shape[1]
    if engine == "literal":
        a_planes, b_planes = bit_planes(a, a_bits, a_signed), bit_planes(b, b_bits, b_signed)
        out = np.zeros((a.shape[0], b.shape[0]), dtype=np.int64)
        for a_value, a_plane in zip(plane_weights(a_bits, a_signed), a_planes):
            for b_value, b_plane in zip(plane_weights(b_bits, b_signed), b_planes):
                out += a_value * b_value * _popcount_product(a_plane, b_plane, k, np.bitwise_and).astype(np.int64)
        return out
    if engine == "fast":
        largest = (np.abs(a).max(initial=0)) * (np.abs(b).max(initial=0))
        if k * largest > FLOAT32_EXACT:
            raise ValueError(f"the fast engine is exact only for K * max|a| * max|b| <= 2^24, not {k * largest}")
        return (a.astype(np.float32) @ b.astype(np.float32).T).astype(np.int64)
    raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
