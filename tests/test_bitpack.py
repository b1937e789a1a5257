"""The packing convention: +1 -> bit 1, element 64*j + i -> bit i of word j, zero padding."""

import numpy as np
import pytest

from bebert.bitpack import (
    WORD_BITS,
    pack_bits,
    pack_signs,
    unpack_bits,
    unpack_signs,
    words_for,
)

LENGTHS = [1, 63, 64, 65, 127, 128, 200, 384, 1536]


def _popcount(words: np.ndarray) -> np.ndarray:
    """Per-word popcount of uint64 words (np.bitwise_count where numpy has it)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words).astype(np.int64)
    as_bytes = np.ascontiguousarray(words.astype("<u8")).view(np.uint8)
    return np.unpackbits(as_bytes, axis=-1).reshape(words.shape + (64,)).sum(-1).astype(np.int64)


def _valid_mask(length: int) -> np.ndarray:
    mask = np.full(words_for(length), np.uint64(0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
    tail = length % WORD_BITS
    if tail:
        mask[-1] = np.uint64((1 << tail) - 1)
    return mask


def _signs(rng, shape):
    return rng.choice(np.array([-1, 1], dtype=np.int8), size=shape)


def test_words_for():
    assert [words_for(k) for k in (0, 1, 63, 64, 65, 128, 129)] == [0, 1, 1, 1, 2, 2, 3]
    with pytest.raises(ValueError):
        words_for(-1)
    with pytest.raises(TypeError):
        words_for(2.0)


def test_hand_checked_example():
    words = pack_signs(np.array([1, -1, -1, 1]))
    assert words.dtype == np.uint64 and words.shape == (1,)
    assert int(words[0]) == 0b1001 == 9

    # element 64 lands in word 1, bit 0; element 63 is the top bit of word 0
    bits = np.zeros(130, dtype=np.uint8)
    bits[64] = 1
    bits[63] = 1
    bits[129] = 1
    words = pack_bits(bits)
    assert words.shape == (3,)
    assert int(words[0]) == 1 << 63
    assert int(words[1]) == 1
    assert int(words[2]) == 1 << 1


def test_byte_layout_is_little_endian():
    bits = np.zeros(64, dtype=bool)
    bits[0] = bits[9] = True  # byte 0 bit 0, byte 1 bit 1
    raw = pack_bits(bits).astype("<u8").tobytes()
    assert raw == bytes([0b1, 0b10, 0, 0, 0, 0, 0, 0])


@pytest.mark.parametrize("length", LENGTHS)
def test_round_trip_vectors(length):
    rng = np.random.default_rng(length)
    signs = _signs(rng, (length,))
    words = pack_signs(signs)
    assert words.shape == (words_for(length),) and words.dtype == np.uint64
    back = unpack_signs(words, length)
    assert back.dtype == np.int8
    np.testing.assert_array_equal(back, signs)
    bits = (signs > 0).astype(np.uint8)
    np.testing.assert_array_equal(pack_bits(bits), words)
    np.testing.assert_array_equal(unpack_bits(words, length), bits)


@pytest.mark.parametrize("length", LENGTHS)
def test_padding_bits_are_zero(length):
    words = pack_signs(np.ones((3, length), dtype=np.float32))
    tail = length % WORD_BITS
    if tail:
        assert np.all(words[:, -1] >> np.uint64(tail) == 0)
        assert np.all(words[:, -1] == np.uint64((1 << tail) - 1))
    else:
        assert np.all(words == np.uint64(0xFFFFFFFFFFFFFFFF))
    assert np.all(_popcount(words).sum(-1) == length)


@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 200), (4, 1, 64), (7, 1536)])
def test_round_trip_multidim_rows_independent(shape):
    rng = np.random.default_rng(sum(shape))
    signs = _signs(rng, shape).astype(np.float32)
    words = pack_signs(signs)
    assert words.shape == shape[:-1] + (words_for(shape[-1]),)
    np.testing.assert_array_equal(unpack_signs(words, shape[-1], dtype=np.float32), signs)
    # each row packs exactly like the row on its own
    flat_signs = signs.reshape(-1, shape[-1])
    flat_words = words.reshape(-1, words.shape[-1])
    for r in (0, len(flat_signs) - 1):
        np.testing.assert_array_equal(pack_signs(flat_signs[r]), flat_words[r])


def test_big_input_matches_reference():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, size=(256, 1000), dtype=np.uint8)
    words = pack_bits(bits)
    # reference: explicit sum of bit * 2**i per word, with Python ints
    for r in (0, 17, 255):
        for j in range(words.shape[1]):
            chunk = bits[r, 64 * j: 64 * (j + 1)]
            expected = sum(int(b) << i for i, b in enumerate(chunk))
            assert int(words[r, j]) == expected
    np.testing.assert_array_equal(unpack_bits(words, 1000), bits)


def test_non_contiguous_and_bool_input():
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2, size=(70, 10)).astype(bool)
    view = bits.T  # (10, 70), not C-contiguous
    np.testing.assert_array_equal(unpack_bits(pack_bits(view), 70), view.astype(np.uint8))


def test_zero_length_is_empty():
    words = pack_signs(np.ones((3, 0)))
    assert words.shape == (3, 0) and words.dtype == np.uint64
    assert unpack_signs(words, 0).shape == (3, 0)


@pytest.mark.parametrize("length", LENGTHS)
def test_xnor_popcount_identity(length):
    rng = np.random.default_rng(1000 + length)
    a = _signs(rng, (8, length))
    w = _signs(rng, (8, length))
    pa, pw = pack_signs(a), pack_signs(w)
    agree = _popcount(~(pa ^ pw) & _valid_mask(length)).sum(-1)
    dots = (a.astype(np.int64) * w.astype(np.int64)).sum(-1)
    np.testing.assert_array_equal(dots, 2 * agree - length)


@pytest.mark.parametrize("bad", [0, 2, 0.5, np.nan, -2])
def test_pack_signs_rejects_non_unit_values(bad):
    values = np.ones(70, dtype=np.float64)
    values[66] = bad
    with pytest.raises(ValueError, match=r"index \(66,\)"):
        pack_signs(values)


def test_pack_signs_rejects_bool_and_scalar():
    with pytest.raises(ValueError):
        pack_signs(np.array([True, False]))
    with pytest.raises(ValueError):
        pack_signs(np.array(1))


@pytest.mark.parametrize("bad", [2, -1, 0.5])
def test_pack_bits_rejects_non_bits(bad):
    bits = np.zeros(10, dtype=np.float32)
    bits[3] = bad
    with pytest.raises(ValueError):
        pack_bits(bits)


def test_unpack_checks_word_count_dtype_and_padding():
    words = pack_signs(np.ones(65))
    with pytest.raises(ValueError, match="words"):
        unpack_bits(words, 64)
    with pytest.raises(ValueError, match="words"):
        unpack_bits(words, 129)
    with pytest.raises(ValueError, match="uint64"):
        unpack_bits(words.astype(np.int64), 65)
    dirty = words.copy()
    dirty[-1] |= np.uint64(1 << 5)  # a padding bit for length 65
    with pytest.raises(ValueError, match="padding"):
        unpack_bits(dirty, 65)
    with pytest.raises(ValueError):
        unpack_signs(words, 65, dtype=np.uint8)
