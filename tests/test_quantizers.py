"""Tests for bebert.quantizers, bebert.qlayers and bebert.qconfig: forward values and STE gradients
of every quantizer against numbers worked out by hand, the built-in quantization configs, and the
deployed (exported-weight) mode of QuantLinear."""

from __future__ import annotations

import math

import pytest
import torch

from bebert.errors import BebertError
from bebert.qconfig import QuantConfig, builtin_config_names, load_quant_config
from bebert.qlayers import QuantEmbedding, QuantLinear, activation_quantizer
from bebert.quantizers import (
    ElasticBinarizer,
    LsqQuantizer,
    binarize_weight,
    binary_weight_parts,
    bipolar_sign,
    integer_range,
    ternarize_weight,
    ternary_threshold_and_scale,
)


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def close(a, b, atol=1e-6):
    return torch.allclose(torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32),
                          atol=atol, rtol=0)


def _set_step(quantizer, step: float) -> None:
    """Fix a quantizer's step by hand and mark it initialized, so the first forward keeps it."""
    with torch.no_grad():
        quantizer.step.fill_(step)
        quantizer.initialized.fill_(True)


# ----------------------------------------------------------------------------------------------
# bipolar_sign
# ----------------------------------------------------------------------------------------------


def test_bipolar_sign_has_no_zero():
    out = bipolar_sign(t([-2.0, -1e-30, 0.0, -0.0, 1e-30, 3.0]))
    assert torch.equal(out, t([-1.0, -1.0, 1.0, 1.0, 1.0, 1.0]))
    assert out.dtype == torch.float32
    assert bipolar_sign(torch.zeros(3, dtype=torch.float64)).dtype == torch.float64


# ----------------------------------------------------------------------------------------------
# binarize_weight / binary_weight_parts
# ----------------------------------------------------------------------------------------------


def test_binarize_per_matrix_hand_example():
    w = t([[0.5, -1.0], [2.0, -0.5]])  # mean|W| = 4 / 4 = 1.0
    assert torch.equal(binarize_weight(w), t([[1.0, -1.0], [1.0, -1.0]]))


def test_binarize_per_row_hand_example():
    w = t([[0.5, -1.0], [2.0, -0.5]])  # row scales: (0.5 + 1) / 2 = 0.75 and (2 + 0.5) / 2 = 1.25
    assert torch.equal(binarize_weight(w, per_row=True), t([[0.75, -0.75], [1.25, -1.25]]))


def test_binarize_maps_zero_to_plus_one():
    w = t([[0.0, -2.0], [2.0, 0.0]])  # mean|W| = 1.0
    assert torch.equal(binarize_weight(w), t([[1.0, -1.0], [1.0, 1.0]]))
    assert torch.equal(binarize_weight(torch.zeros(2, 3)), torch.zeros(2, 3))  # scale 0, no NaN


def test_binarize_centered_per_matrix_hand_example():
    # BiT: mean W = 12 / 4 = 3 -> W - mean = [[-2, -1], [0, 3]]; mean|.| = 6 / 4 = 1.5; sign(0) = +1.
    w = t([[1.0, 2.0], [3.0, 6.0]])
    assert torch.equal(binarize_weight(w, center=True), t([[-1.5, -1.5], [1.5, 1.5]]))
    # Without centring every entry is positive: all +mean|W| = 3.
    assert torch.equal(binarize_weight(w), torch.full((2, 2), 3.0))


def test_binarize_centered_per_row_hand_example():
    # row 0: mean 3 -> [-2, -1, 3], scale 2;  row 1: mean 1 -> [-1, -1, 2], scale 4/3.
    w = t([[1.0, 2.0, 6.0], [0.0, 0.0, 3.0]])
    expected = t([[-2.0, -2.0, 2.0], [-4 / 3, -4 / 3, 4 / 3]])
    assert close(binarize_weight(w, per_row=True, center=True), expected)


@pytest.mark.parametrize("per_row", [False, True])
@pytest.mark.parametrize("center", [False, True])
def test_binarize_gradient_is_identity(per_row, center):
    torch.manual_seed(0)
    w = torch.randn(3, 5, requires_grad=True)
    for upstream in (torch.ones(3, 5), torch.randn(3, 5), torch.arange(15.0).reshape(3, 5) - 7):
        w.grad = None
        binarize_weight(w, per_row=per_row, center=center).backward(upstream)
        assert torch.equal(w.grad, upstream)


@pytest.mark.parametrize("per_row", [False, True])
@pytest.mark.parametrize("center", [False, True])
def test_binary_weight_parts_recompose(per_row, center):
    torch.manual_seed(1)
    w = torch.randn(4, 6)
    w[0, 0] = 0.0
    signs, scale = binary_weight_parts(w, per_row=per_row, center=center)
    assert set(signs.unique().tolist()) <= {-1.0, 1.0}
    assert scale.shape == ((4, 1) if per_row else ())
    assert torch.equal(signs * scale, binarize_weight(w, per_row=per_row, center=center))


def test_binary_weight_parts_hand_example():
    signs, scale = binary_weight_parts(t([[0.5, -1.0], [2.0, -0.5]]), per_row=True)
    assert torch.equal(signs, t([[1.0, -1.0], [1.0, -1.0]]))
    assert torch.equal(scale, t([[0.75], [1.25]]))
    w = torch.ones(2, 2, requires_grad=True)
    signs, scale = binary_weight_parts(w)
    assert not signs.requires_grad and not scale.requires_grad


# ----------------------------------------------------------------------------------------------
# ternarize_weight (TWN)
# ----------------------------------------------------------------------------------------------

W_TERNARY = [[1.0, -0.25, 0.5, -2.0], [0.25, 3.0, -0.5, -1.5]]


def test_ternary_threshold_and_scale_per_matrix():
    # mean|W| = 9 / 8 = 1.125 -> threshold 0.7875; above it: 1, 2, 3, 1.5 -> scale 7.5 / 4 = 1.875.
    threshold, scale = ternary_threshold_and_scale(t(W_TERNARY), per_row=False)
    assert close(threshold, 0.7875) and close(scale, 1.875)


def test_ternary_threshold_and_scale_per_row():
    # row 0: mean 0.9375 -> threshold 0.65625, above 1, 2 -> 1.5; row 1: mean 1.3125 -> 0.91875, above 3, 1.5 -> 2.25
    threshold, scale = ternary_threshold_and_scale(t(W_TERNARY), per_row=True)
    assert close(threshold, [[0.65625], [0.91875]]) and close(scale, [[1.5], [2.25]])


def test_ternarize_hand_example():
    assert close(ternarize_weight(t(W_TERNARY)), [[1.875, 0, 0, -1.875], [0, 1.875, 0, -1.875]])
    assert close(ternarize_weight(t(W_TERNARY), per_row=True), [[1.5, 0, 0, -1.5], [0, 2.25, 0, -2.25]])


def test_ternarize_zero_matrix_is_zero():
    assert torch.equal(ternarize_weight(torch.zeros(2, 3)), torch.zeros(2, 3))


@pytest.mark.parametrize("per_row", [False, True])
def test_ternarize_gradient_is_identity(per_row):
    torch.manual_seed(2)
    w = torch.randn(3, 4, requires_grad=True)
    for upstream in (torch.ones(3, 4), torch.randn(3, 4)):
        w.grad = None
        ternarize_weight(w, per_row=per_row).backward(upstream)
        assert torch.equal(w.grad, upstream)


# ----------------------------------------------------------------------------------------------
# LSQ
# ----------------------------------------------------------------------------------------------


def test_integer_range():
    assert integer_range(4, signed=True) == (-8, 7)
    assert integer_range(4, signed=False) == (0, 15)
    assert integer_range(2, signed=True) == (-2, 1)
    assert integer_range(8, signed=False) == (0, 255)


def test_lsq_initializes_step_from_first_batch_only():
    q = LsqQuantizer(4, signed=True)
    assert not bool(q.initialized)
    x = t([0.5, -1.0, 1.5, -2.0])  # mean|x| = 1.25 -> step = 2.5 / sqrt(7)
    q(x)
    assert bool(q.initialized)
    expected = 2 * 1.25 / math.sqrt(7)
    assert close(q.step, [expected])
    q(100 * x)  # a second, very different batch must not re-initialize
    assert close(q.step, [expected])


def test_lsq_outputs_are_step_times_integers_in_range():
    torch.manual_seed(3)
    q = LsqQuantizer(4, signed=True)
    x = torch.cat([torch.randn(62), t([50.0, -50.0])])  # two outliers far beyond both ends
    out = q(x)
    step = q.step.detach()
    codes = out.detach() / step
    assert torch.allclose(codes, codes.round(), atol=1e-5)
    assert codes.round().min() >= -8 and codes.round().max() <= 7
    assert codes.round().min() == -8 and codes.round().max() == 7  # the outliers are clamped
    ints = q.integers(x)
    assert torch.equal(ints, ints.round()) and ints.min() >= -8 and ints.max() <= 7
    assert torch.allclose(ints * step, out.detach(), atol=0)


def test_lsq_hand_example_forward_and_gradients():
    q = LsqQuantizer(4, signed=True)
    _set_step(q, 0.5)
    # x / step = [0.6, -1.4, 10, -9.2]: two inside (round -> 1, -1), one above Qp=7, one below Qn=-8.
    x = t([0.3, -0.7, 5.0, -4.6]).requires_grad_()
    out = q(x)
    assert close(out, [0.5, -0.5, 3.5, -4.0])
    assert torch.equal(q.integers(x.detach()), t([1.0, -1.0, 7.0, -8.0]))
    out.backward(t([1.0, 2.0, 3.0, 4.0]))
    assert torch.equal(x.grad, t([1.0, 2.0, 0.0, 0.0]))
    # d out / d step: round(q) - q = 0.4 and 0.4 inside, Qp = 7 and Qn = -8 outside; scaled 1/sqrt(4 * 7).
    expected = (0.4 * 1 + 0.4 * 2 + 7 * 3 + (-8) * 4) / math.sqrt(4 * 7)
    assert close(q.step.grad, [expected], atol=1e-5)


def test_lsq_x_gradient_inside_closed_range():
    q = LsqQuantizer(4, signed=True)
    _set_step(q, 0.5)
    # Qn * step = -4.0 and Qp * step = 3.5 are inside (closed interval); just beyond them is outside.
    x = t([-4.01, -4.0, -1.0, 0.0, 3.5, 3.51]).requires_grad_()
    q(x).sum().backward()
    assert torch.equal(x.grad, t([0.0, 1.0, 1.0, 1.0, 1.0, 0.0]))


def test_lsq_unsigned_range_and_gradients():
    q = LsqQuantizer(4, signed=False)
    assert (q.qn, q.qp) == (0, 15)
    x0 = t([1.0, 3.0])  # initial step 2 * 2 / sqrt(15)
    q(x0)
    assert close(q.step, [4 / math.sqrt(15)])
    _set_step(q, 0.25)
    # x / step = [-2, 1.2, 20, 2.6] -> codes [0, 1, 15, 3]
    x = t([-0.5, 0.3, 5.0, 0.65]).requires_grad_()
    out = q(x)
    assert close(out, [0.0, 0.25, 3.75, 0.75])
    assert torch.equal(q.integers(x.detach()), t([0.0, 1.0, 15.0, 3.0]))
    out.backward(t([1.0, 1.0, 1.0, 1.0]))
    assert torch.equal(x.grad, t([0.0, 1.0, 0.0, 1.0]))
    # below Qn=0 -> 0; inside -0.2 and 0.4; above -> 15; scale 1 / sqrt(4 * 15)
    assert close(q.step.grad, [(0 - 0.2 + 15 + 0.4) / math.sqrt(60)], atol=1e-5)


@pytest.mark.parametrize("bits", [0, 1, 17, 32])
def test_lsq_rejects_bit_widths_out_of_range(bits):
    with pytest.raises(ValueError, match=str(bits)):
        LsqQuantizer(bits)


# ----------------------------------------------------------------------------------------------
# Elastic binarizer (BiT)
# ----------------------------------------------------------------------------------------------


def test_elastic_binarizer_initial_steps():
    signed = ElasticBinarizer(signed=True, channels=2)
    signed(t([[1.0, -3.0]]))
    assert close(signed.step, [2.0])  # mean|x|
    unsigned = ElasticBinarizer(signed=False)
    unsigned(t([0.25, 0.75]))
    assert close(unsigned.step, [1.0])  # 2 * mean|x|: the cut alpha / 2 starts at the mean
    assert unsigned.shift is None and signed.shift.shape == (2,)


def test_elastic_binarizer_signed_hand_example():
    b = ElasticBinarizer(signed=True, channels=3)
    _set_step(b, 0.5)
    with torch.no_grad():
        b.shift.copy_(t([0.1, -0.2, 0.0]))
    x = t([[0.3, -0.5, 0.0], [1.0, -0.1, -0.7]]).requires_grad_()
    # u = x - shift = [[0.2, -0.3, 0.0], [0.9, 0.1, -0.7]]
    out = b(x)
    assert torch.equal(out, t([[0.5, -0.5, 0.5], [0.5, 0.5, -0.5]]))
    assert torch.equal(b.integers(x.detach()), t([[1.0, -1.0, 1.0], [1.0, 1.0, -1.0]]))
    g = t([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    out.backward(g)
    # |u| <= alpha -> [[1, 1, 1], [0, 1, 0]]
    assert torch.equal(x.grad, t([[1.0, 2.0, 3.0], [0.0, 5.0, 0.0]]))
    # sum(sign(u) * g) = 1 - 2 + 3 + 4 + 5 - 6 = 5, scaled 1 / sqrt(6 * 1)
    assert close(b.step.grad, [5 / math.sqrt(6)], atol=1e-6)
    assert torch.equal(b.shift.grad, -x.grad.sum(dim=0))
    assert torch.equal(b.shift.grad, t([-1.0, -7.0, -3.0]))


def test_elastic_binarizer_signed_shift_is_per_last_axis_channel():
    torch.manual_seed(4)
    b = ElasticBinarizer(signed=True, channels=4)
    _set_step(b, 1.0)
    with torch.no_grad():
        b.shift.copy_(t([0.5, -0.5, 0.0, 2.0]))
    x = torch.randn(2, 3, 4, requires_grad=True)
    out = b(x)
    assert torch.equal(out, bipolar_sign(x.detach() - b.shift.detach()))
    g = torch.randn(2, 3, 4)
    out.backward(g)
    inside = ((x.detach() - b.shift.detach()).abs() <= 1.0).float()
    assert torch.equal(x.grad, g * inside)
    assert torch.allclose(b.shift.grad, -(g * inside).sum(dim=(0, 1)), atol=1e-6)


def test_elastic_binarizer_unsigned_hand_example():
    b = ElasticBinarizer(signed=False)
    _set_step(b, 0.8)
    # threshold alpha / 2 = 0.4: x / alpha = [-0.375, 0.125, 0.4875, 0.5125, 1.125, 2.5]
    x = t([-0.3, 0.1, 0.39, 0.41, 0.9, 2.0]).requires_grad_()
    out = b(x)
    assert close(out, [0.0, 0.0, 0.0, 0.8, 0.8, 0.8])
    assert torch.equal(out.detach(), b.integers(x.detach()) * b.step.detach())  # values in {0, alpha}
    assert torch.equal(b.integers(x.detach()), t([0.0, 0.0, 0.0, 1.0, 1.0, 1.0]))
    out.backward(torch.ones(6))
    assert torch.equal(x.grad, t([0.0, 1.0, 1.0, 1.0, 0.0, 0.0]))
    # step: below 0 -> 0; inside round(q) - q = -0.125, -0.4875, 0.4875; above -> 1, 1; / sqrt(6 * 1)
    assert close(b.step.grad, [(-0.125 - 0.4875 + 0.4875 + 2) / math.sqrt(6)], atol=1e-5)


def test_elastic_binarizer_unsigned_tie_rounds_to_even():
    b = ElasticBinarizer(signed=False)
    _set_step(b, 0.8)
    x = t([0.4, 1.2])  # exactly alpha / 2 and 3 alpha / 2 in float32
    assert torch.equal(b(x), t([0.0, 0.8]))  # documented: round half to even, then clamp to [0, 1]


# ----------------------------------------------------------------------------------------------
# activation_quantizer
# ----------------------------------------------------------------------------------------------


def test_activation_quantizer_by_bit_width():
    assert activation_quantizer(load_quant_config("fp32"), 8) is None
    lsq = activation_quantizer(load_quant_config("w1e1a4"), 8)
    assert isinstance(lsq, LsqQuantizer) and lsq.bits == 4 and lsq.signed
    lsq_u = activation_quantizer(load_quant_config("w1e1a4"), 8, signed=False)
    assert isinstance(lsq_u, LsqQuantizer) and not lsq_u.signed and (lsq_u.qn, lsq_u.qp) == (0, 15)
    eb = activation_quantizer(load_quant_config("w1e1a1"), 8)
    assert isinstance(eb, ElasticBinarizer) and eb.signed and eb.shift.shape == (8,)
    eb_u = activation_quantizer(load_quant_config("w1e1a1"), 8, signed=False)
    assert isinstance(eb_u, ElasticBinarizer) and not eb_u.signed and eb_u.shift is None
    assert activation_quantizer(QuantConfig(activation_bits=8)).bits == 8


# ----------------------------------------------------------------------------------------------
# QuantConfig
# ----------------------------------------------------------------------------------------------


def test_builtin_config_names():
    assert {"fp32", "w1e1a4", "w1e1a1"} <= set(builtin_config_names())


def test_builtin_configs_fields():
    fp32 = load_quant_config("fp32")
    assert fp32.bits_label == "32-32-32" and fp32.is_full_precision and fp32 == QuantConfig()
    a4 = load_quant_config("w1e1a4")
    assert (a4.weight_bits, a4.embedding_bits, a4.activation_bits) == (1, 1, 4)
    assert (a4.weight_quantizer, a4.weight_scale) == ("bwn", "matrix")
    assert a4.quantize_attention and a4.quantize_head and not a4.is_full_precision
    assert a4.bits_label == "1-1-4"
    a1 = load_quant_config("w1e1a1")
    assert (a1.weight_bits, a1.embedding_bits, a1.activation_bits) == (1, 1, 1)
    assert (a1.weight_quantizer, a1.weight_scale) == ("bwn_centered", "row")
    assert a1.quantize_attention and a1.quantize_head
    assert a1.bits_label == "1-1-1"


def test_config_round_trips_through_dict_and_file(tmp_path):
    a4 = load_quant_config("w1e1a4")
    assert QuantConfig.from_dict(a4.to_dict()) == a4
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nweight_bits: 2\nactivation_bits: 8\n")
    mine = load_quant_config(path)
    assert mine.bits_label == "2-32-8" and mine.name == "mine"
    assert load_quant_config(str(path)) == mine
    assert a4.replace(activation_bits=2).bits_label == "1-1-2"


@pytest.mark.parametrize(
    "text, words",
    [
        ("weight_bits: 3\n", ["weight_bits", "3"]),
        ("embedding_bits: 2\n", ["embedding_bits", "2"]),
        ("activation_bits: 0\n", ["activation_bits", "0"]),
        ("activation_bits: 9\n", ["activation_bits", "9"]),
        ("weight_quantizer: xnor\n", ["weight_quantizer", "xnor"]),
        ("weight_scale: column\n", ["weight_scale", "column"]),
        ("weight_bits: 1\nfoo: 1\n", ["foo", "{path}"]),
        ("- 1\n- 2\n", ["mapping", "{path}"]),
        ("", ["mapping", "{path}"]),
        ("weight_bits: [1\n", ["YAML", "{path}"]),
    ],
)
def test_bad_config_files_raise_bebert_error(tmp_path, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(BebertError) as info:
        load_quant_config(path)
    for word in words:
        assert word.format(path=path) in str(info.value)


def test_unknown_config_name_raises_bebert_error():
    with pytest.raises(BebertError, match="w9e9a9") as info:
        load_quant_config("w9e9a9")
    assert "w1e1a4" in str(info.value)  # lists the built-in names


def test_quant_config_direct_bad_values():
    with pytest.raises(BebertError, match="weight_bits"):
        QuantConfig(weight_bits=3)
    with pytest.raises(BebertError, match="activation_bits"):
        QuantConfig(activation_bits=0)
    with pytest.raises(BebertError, match="mapping"):
        QuantConfig.from_dict([("weight_bits", 1)])


@pytest.mark.parametrize("value", ["four", "4.5", "true"])
def test_non_integer_activation_bits_raise_bebert_error(tmp_path, value):
    path = tmp_path / "bad.yaml"
    path.write_text(f"activation_bits: {value}\n")
    with pytest.raises(BebertError, match="activation_bits"):
        load_quant_config(path)


# ----------------------------------------------------------------------------------------------
# QuantLinear / QuantEmbedding
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("per_row, center", [(False, False), (True, True), (True, False)])
@pytest.mark.parametrize("with_input_quant", [False, True])
def test_quant_linear_deployed_is_bit_identical(per_row, center, with_input_quant):
    torch.manual_seed(5)
    layer = QuantLinear(8, 4, weight_bits=1, per_row=per_row, center=center,
                        input_quant=LsqQuantizer(4) if with_input_quant else None)
    x = torch.randn(3, 8)
    with torch.no_grad():
        trained = layer(x)  # also initializes the input quantizer's step
        layer.weight.copy_(layer.quantized_weight())
    layer.deployed = True
    with torch.no_grad():
        deployed = layer(x)
        assert torch.equal(layer.quantized_weight(), layer.weight)
    assert torch.equal(deployed, trained)


def test_quant_linear_with_weight_split_deployed_is_bit_identical():
    torch.manual_seed(6)
    layer = QuantLinear(8, 4, weight_bits=1)
    layer.weight_split = torch.nn.Parameter(torch.randn(4, 8))
    x = torch.randn(2, 8)
    with torch.no_grad():
        trained = layer(x)
        expected_w = binarize_weight(layer.weight) + binarize_weight(layer.weight_split)
        assert torch.equal(layer.quantized_weight(), expected_w)
        layer.weight.copy_(layer.quantized_weight())
    layer.deployed = True
    with torch.no_grad():
        assert torch.equal(layer(x), trained)


def test_quant_linear_weight_bits_select_quantizer():
    torch.manual_seed(7)
    fp = QuantLinear(4, 3)
    assert fp.quantized_weight() is fp.weight
    tern = QuantLinear(4, 3, weight_bits=2, per_row=True)
    assert torch.equal(tern.quantized_weight(), ternarize_weight(tern.weight, per_row=True))
    binary = QuantLinear(4, 3, weight_bits=1)
    x = torch.randn(2, 4)
    expected = x @ binarize_weight(binary.weight).T + binary.bias
    assert torch.allclose(binary(x), expected, atol=1e-6)


def test_quant_embedding_binary_rows():
    torch.manual_seed(8)
    emb = QuantEmbedding(5, 4, padding_idx=0, weight_bits=1)
    ids = torch.tensor([[1, 4, 0]])
    out = emb(ids)
    table = binarize_weight(emb.weight, per_row=True)
    assert torch.equal(out, table[ids])
    # every row is +-(its own mean |.|)
    assert torch.allclose(out[0, 0].abs(), emb.weight[1].abs().mean().expand(4))
