"""sim/gemm.py: both engines equal a plain integer product, on random, ragged and worst-case inputs."""

import numpy as np
import pytest

from bebert import bitpack
from bebert.sim.gemm import accumulator_bits, bit_planes, bitserial_matmul, plane_weights, xnor_popcount

ENGINES = ("literal", "fast")
SHAPES = [(1, 1, 1), (3, 5, 63), (4, 7, 64), (5, 3, 65), (8, 16, 200), (16, 12, 384)]


def random_signs(rng, shape):
    return np.where(rng.random(shape) < 0.5, -1, 1).astype(np.int64)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("m, n, k", SHAPES)
def test_xnor_popcount_equals_integer_product(engine, m, n, k):
    rng = np.random.default_rng(k)
    a, w = random_signs(rng, (m, k)), random_signs(rng, (n, k))
    got = xnor_popcount(bitpack.pack_signs(a), bitpack.pack_signs(w), k, engine)
    assert got.dtype == np.int32
    assert np.array_equal(got, a @ w.T)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("k", [1, 63, 64, 65, 1536])
def test_xnor_worst_cases_all_agree_and_all_disagree(engine, k):
    ones = np.ones((2, k), dtype=np.int64)
    packed = bitpack.pack_signs(ones)
    assert np.all(xnor_popcount(packed, packed, k, engine) == k)
    assert np.all(xnor_popcount(packed, bitpack.pack_signs(-ones), k, engine) == -k)
    assert k < 2 ** (accumulator_bits(k) - 1)  # the accumulator holds +-k


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("bits, signed", [(4, True), (4, False), (2, True), (8, True), (1, False)])
@pytest.mark.parametrize("m, n, k", SHAPES[1:])
def test_bitserial_equals_integer_product(engine, bits, signed, m, n, k):
    rng = np.random.default_rng(bits * 1000 + k)
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    x = rng.integers(lo, hi + 1, size=(m, k))
    w = random_signs(rng, (n, k))
    got = bitserial_matmul(x, bitpack.pack_signs(w), k, bits, signed, engine)
    assert np.array_equal(got, x @ w.T)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("signed", [True, False])
def test_bitserial_worst_case_fits_the_accumulator(engine, signed):
    k, bits = 1536, 4
    extreme = -(2 ** (bits - 1)) if signed else 2**bits - 1  # the largest magnitude code
    x = np.full((1, k), extreme)
    w = np.ones((2, k), dtype=np.int64)
    w[1] = -1
    got = bitserial_matmul(x, bitpack.pack_signs(w), k, bits, signed, engine)
    assert np.array_equal(got, x @ w.T)
    bound = np.abs(got).max()
    assert bound == k * abs(extreme)
    assert bound < 2 ** (accumulator_bits(k, bits, signed) - 1)


def test_plane_weights_and_planes_round_trip():
    assert list(plane_weights(4, True)) == [1, 2, 4, -8]
    assert list(plane_weights(4, False)) == [1, 2, 4, 8]
    x = np.array([[-8, -1, 0, 7]])
    planes = bit_planes(x, 4, True)
    bits = np.stack([bitpack.unpack_bits(p, 4) for p in planes])  # (bits, 1, 4)
    assert np.array_equal(np.tensordot(plane_weights(4, True), bits, axes=1), x)


def test_bad_inputs():
    w = bitpack.pack_signs(np.ones((2, 70)))
    with pytest.raises(ValueError, match="engine"):
        xnor_popcount(w, w, 70, "magic")
    with pytest.raises(ValueError, match="words for K=64"):
        xnor_popcount(w, w, 64)
    with pytest.raises(TypeError, match="uint64"):
        xnor_popcount(w.astype(np.int64), w, 70)
    with pytest.raises(ValueError, match=r"\[-8, 7\]"):
        bit_planes(np.array([[8]]), 4, True)
    with pytest.raises(ValueError):
        accumulator_bits(0)


def test_fast_engine_refuses_sizes_where_float32_is_not_exact():
    k = 2**24 // 8 + 64  # K * 8 (the largest signed 4-bit magnitude) passes 2^24
    w = bitpack.pack_signs(np.ones((1, k)))
    with pytest.raises(ValueError, match="exact only"):
        bitserial_matmul(np.zeros((1, k), dtype=np.int64), w, k, 4, True, "fast")
