"""The one bit-packing convention shared by training export, the simulator and the accelerator.

Why this module exists: a binary BERT's weights and activations are bipolar (+1/-1), and the
hardware computes their dot products with XNOR and popcount over 64-bit words. The exporter,
the NumPy simulator and the FPGA flow must agree on *exactly* which bit of which word holds
which element, so that agreement lives here and nowhere else. The module is torch-free on
purpose: the simulator and the hardware flow import it without PyTorch installed.

The convention
--------------
* Value mapping: +1 is stored as bit 1, -1 as bit 0.
* A vector of length ``K`` is packed into ``words_for(K) == ceil(K / 64)`` unsigned 64-bit words.
* Element ``e`` of the vector is bit ``e % 64`` of word ``e // 64``, where bit ``i`` of a word
  is the bit with value ``2**i`` (bit 0 is the least significant bit).
* The words are little-endian ``uint64`` whenever they are serialised as bytes, so the byte
  stream of a packed vector is the vector's bits in element order, eight per byte, LSB first.
* The padding bits of the last word (elements ``K .. 64*ceil(K/64) - 1``) are always 0.
  Because -1 is bit 0, padding reads back as -1 if unpacked past ``K``; consumers must mask
  to ``K`` bits (see below) rather than rely on the padding's value.
* An array of shape ``(..., K)`` is packed along its last axis only: every leading index is an
  independent vector, giving shape ``(..., ceil(K / 64))``. A ``(rows, K)`` matrix becomes
  ``(rows, ceil(K / 64))``, one packed row per matrix row.
* ``K == 0`` is allowed and packs to zero words (shape ``(..., 0)``).

Datapath identity (what the hardware relies on): for +-1 vectors ``a`` and ``w`` of length
``K`` with packed words ``pa`` and ``pw``::

    dot(a, w) == 2 * popcount(~(pa ^ pw) & mask) - K

where ``mask`` keeps only the ``K`` valid bits (all ones except in the last word, where it is
``2**(K % 64) - 1`` when ``K % 64 != 0``).
"""

from __future__ import annotations

import numpy as np

WORD_BITS = 64
"""Bits per packed word."""

_BYTES_PER_WORD = WORD_BITS // 8
_WORD_DTYPE = np.dtype("<u8")


def words_for(length: int) -> int:
    """Number of 64-bit words holding ``length`` packed elements: ``ceil(length / 64)``."""
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)):
        raise TypeError(f"packed length must be an integer, got {length!r}")
    if length < 0:
        raise ValueError(f"packed length must be non-negative, got {length}")
    return (int(length) + WORD_BITS - 1) // WORD_BITS


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack a 0/1 (or bool) array of shape ``(..., K)`` into ``uint64`` words ``(..., ceil(K/64))``.

    Bit ``i`` of word ``j`` holds element ``64*j + i``; padding bits are 0. Any value other
    than 0 or 1 (including NaN) raises ``ValueError``.
    """
    arr = np.asarray(bits)
    if arr.ndim == 0:
        raise ValueError("pack_bits needs an array with at least one axis, got a scalar")
    if arr.dtype != np.bool_:
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise ValueError(f"pack_bits needs a bool or numeric 0/1 array, got dtype {arr.dtype}")
        ok = (arr == 0) | (arr == 1)
        if not ok.all():
            bad = arr.reshape(-1)[int(np.argmin(ok.reshape(-1)))]
            raise ValueError(f"pack_bits accepts only 0/1 values, found {bad!r}")
    length = arr.shape[-1]
    n_words = words_for(length)
    lead = arr.shape[:-1]
    if n_words == 0:
        return np.zeros(lead + (0,), dtype=np.uint64)
    padded = np.zeros(lead + (n_words * WORD_BITS,), dtype=np.uint8)
    padded[..., :length] = arr
    packed_bytes = np.packbits(padded, axis=-1, bitorder="little")  # (..., n_words * 8)
    words = np.ascontiguousarray(packed_bytes).view(_WORD_DTYPE)  # (..., n_words)
    return words.astype(np.uint64, copy=False)


def unpack_bits(words: np.ndarray, length: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: ``uint64`` words ``(..., ceil(length/64))`` -> ``uint8`` 0/1 ``(..., length)``.

    Raises ``ValueError`` if the words are not ``uint64``, if the last axis does not hold
    exactly ``ceil(length / 64)`` words, or if a padding bit is set (which means the words
    were not produced under this convention).
    """
    arr = np.asarray(words)
    n_words = words_for(length)
    if arr.ndim == 0:
        raise ValueError("unpack_bits needs an array with at least one axis, got a scalar")
    if arr.dtype.kind != "u" or arr.dtype.itemsize != _BYTES_PER_WORD:
        raise ValueError(f"unpack_bits needs uint64 words, got dtype {arr.dtype}")
    if arr.shape[-1] != n_words:
        raise ValueError(
            f"unpack_bits: length {length} needs {n_words} words on the last axis, "
            f"got {arr.shape[-1]}"
        )
    lead = arr.shape[:-1]
    if n_words == 0:
        return np.zeros(lead + (0,), dtype=np.uint8)
    tail = length % WORD_BITS
    if tail:
        pad_mask = np.uint64(~((1 << tail) - 1) & 0xFFFFFFFFFFFFFFFF)
        if np.any(arr[..., -1].astype(np.uint64) & pad_mask):
            raise ValueError(
                f"unpack_bits: padding bits beyond element {length} are set; "
                "packed words must have zero padding"
            )
    as_bytes = np.ascontiguousarray(arr.astype(_WORD_DTYPE, copy=False)).view(np.uint8)
    return np.unpackbits(as_bytes, axis=-1, count=length, bitorder="little")


def pack_signs(values: np.ndarray) -> np.ndarray:
    """Pack a +1/-1 array of shape ``(..., K)`` (any numeric dtype) into ``uint64`` words.

    +1 becomes bit 1 and -1 bit 0. Anything that is not exactly +1 or -1 (0, 0.5, NaN, a
    bool) raises ``ValueError`` naming the first bad value and its index.
    """
    arr = np.asarray(values)
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise ValueError(f"pack_signs needs a numeric +1/-1 array, got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError("pack_signs needs an array with at least one axis, got a scalar")
    positive = arr == 1
    ok = positive | (arr == -1)
    if not ok.all():
        flat = int(np.argmin(ok.reshape(-1)))
        index = tuple(int(i) for i in np.unravel_index(flat, arr.shape))
        bad = arr.reshape(-1)[flat]
        raise ValueError(f"pack_signs accepts only +1/-1 values, found {bad!r} at index {index}")
    return pack_bits(positive)


def unpack_signs(words: np.ndarray, length: int, dtype=np.int8) -> np.ndarray:
    """Inverse of :func:`pack_signs`: ``uint64`` words -> +1/-1 array ``(..., length)`` of ``dtype``.

    ``dtype`` must be a signed integer or floating type (an unsigned type cannot hold -1).
    """
    dt = np.dtype(dtype)
    if dt == np.bool_ or not (
        np.issubdtype(dt, np.signedinteger) or np.issubdtype(dt, np.floating)
    ):
        raise ValueError(f"unpack_signs needs a signed integer or float dtype, got {dt}")
    bits = unpack_bits(words, length)
    out = bits.astype(dt)
    out *= 2
    out -= 1
    return out
