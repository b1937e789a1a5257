"""Operation and size counts of one BERT inference, per layer: what the cost models and tables reuse.

Everything is derived from the model dimensions (the artifact manifest's ``model`` section) and the
bit widths; nothing is measured here. One *MAC* is one multiply-accumulate of a matrix product.

Matrix products (per sequence of ``tokens`` tokens, per member):
  * the six weight products of each layer (query, key, value, attention output, FFN in, FFN out):
    tokens x out x in MACs, weights ``weight_bits`` wide, inputs ``activation_bits`` wide;
  * the two attention products (scores Q.K^T and context P.V): heads x tokens x tokens x head_size
    MACs each, on ``activation_bits``-wide operands when the attention is quantized, else in float;
  * the pooler and the classifier: one token (the [CLS] row).
A product of a w-bit and an a-bit operand costs ``w * a`` binary operations (BOPs) per MAC: it is
that many bit-plane XNOR/AND-popcounts in the datapath.

The FLOPs convention is the binary-BERT papers' (BinaryBERT, BiBERT; the one behind BERT-base's
22.5 GFLOPs at 128 tokens): a full-precision MAC counts 2 FLOPs, and 64 BOPs count as 1 FLOP
(a 64-bit word op), so a quantized MAC counts ``2 * w * a / 64`` FLOPs. Element-wise work (scale
and bias, residual adds, LayerNorm, softmax, GELU, embedding sums) is counted as float operations
with the per-element costs in ELEMENTWISE_FLOPS and listed separately, since the integer datapath
does it in fixed point.

Sizes count what a deployed model must store: binary tensors at 1 bit per element, their scales,
and everything else at 32 bits (the artifact's layout); the fp32 reference stores all at 32 bits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FULL = 32  # bits of a full-precision value
BITS_PER_WORD_OP = 64  # BOPs counted as one FLOP

# Float operations per element of each element-wise step (stated convention, see module doc).
ELEMENTWISE_FLOPS = {
    "scale_bias": 2,  # one multiply by the scale, one bias add, per matrix-product output
    "residual": 1,
    "layer_norm": 8,  # mean, variance (2), subtract, divide, sqrt share, gain, bias
    "softmax": 5,  # max, subtract, exp, sum, divide
    "gelu": 8,
    "embedding_sum": 2,
}


@dataclass(frozen=True)
class MatMul:
    name: str
    macs: int
    weight_bits: int  # bits of the first operand (the weights, or Q / P for the attention products)
    input_bits: int  # bits of the second operand (the activations)

    @property
    def quantized(self) -> bool:
        return self.weight_bits < FULL and self.input_bits < FULL

    @property
    def bops(self) -> int:
        return self.macs * self.weight_bits * self.input_bits if self.quantized else 0

    @property
    def flops(self) -> float:
        return 2.0 * self.bops / BITS_PER_WORD_OP if self.quantized else 2.0 * self.macs


@dataclass(frozen=True)
class LayerCounts:
    name: str
    matmuls: tuple[MatMul, ...]
    elementwise: dict[str, int] = field(default_factory=dict)  # step -> elements

    @property
    def macs(self) -> int:
        return sum(m.macs for m in self.matmuls)

    @property
    def bops(self) -> int:
        return sum(m.bops for m in self.matmuls)

    @property
    def matmul_flops(self) -> float:
        return sum(m.flops for m in self.matmuls)

    @property
    def elementwise_flops(self) -> int:
        return sum(ELEMENTWISE_FLOPS[step] * n for step, n in self.elementwise.items())

    @property
    def flops(self) -> float:
        return self.matmul_flops + self.elementwise_flops


@dataclass(frozen=True)
class Bits:
    """Bit widths of one model: 32 everywhere is the full-precision reference."""

    weights: int = 1
    embeddings: int = 1
    activations: int = 4
    quantize_attention: bool = True
    quantize_head: bool = True
    per_row_weight_scales: bool = False

    @classmethod
    def from_manifest(cls, manifest: dict) -> "Bits":
        quant = manifest["quant"]
        return cls(weights=quant["weight_bits"], embeddings=quant["embedding_bits"],
                   activations=quant["activation_bits"], quantize_attention=quant["quantize_attention"],
                   quantize_head=quant["quantize_head"], per_row_weight_scales=quant["weight_scale"] == "row")


FP32 = Bits(weights=FULL, embeddings=FULL, activations=FULL, quantize_attention=False, quantize_head=False)


def inference_counts(dims: dict, tokens: int, bits: Bits) -> list[LayerCounts]:
    """Per-layer counts of one member's forward pass over one sequence of ``tokens`` tokens."""
    h, inter, heads = dims["hidden_size"], dims["intermediate_size"], dims["num_heads"]
    head_size = h // heads
    w, a = bits.weights, bits.activations
    attn = a if bits.quantize_attention else FULL
    layers = [LayerCounts("embeddings", (), {"embedding_sum": tokens * h, "layer_norm": tokens * h})]
    for i in range(dims["num_layers"]):
        weights = [("query", h, h), ("key", h, h), ("value", h, h), ("attention_output", h, h),
                   ("ffn_in", inter, h), ("ffn_out", h, inter)]
        matmuls = [MatMul(name, tokens * out * k, w, a) for name, out, k in weights]
        matmuls += [MatMul("scores", heads * tokens * tokens * head_size, attn, attn),
                    MatMul("context", heads * tokens * tokens * head_size, attn, attn)]
        layers.append(LayerCounts(f"layer{i}", tuple(matmuls), {
            "scale_bias": tokens * (4 * h + inter + h),
            "softmax": heads * tokens * tokens,
            "residual": 2 * tokens * h,
            "layer_norm": 2 * tokens * h,
            "gelu": tokens * inter,
        }))
    hw, ha = (w, a) if bits.quantize_head else (FULL, FULL)
    labels = dims["num_labels"]
    layers.append(LayerCounts("head", (MatMul("pooler", h * h, hw, ha), MatMul("classifier", labels * h, hw, ha)),
                              {"scale_bias": h + labels, "gelu": h}))  # tanh of the pooler costed as GELU
    return layers


def total(layers: list[LayerCounts]) -> dict[str, float]:
    return {"macs": sum(l.macs for l in layers), "bops": sum(l.bops for l in layers),
            "matmul_flops": sum(l.matmul_flops for l in layers),
            "elementwise_flops": sum(l.elementwise_flops for l in layers),
            "flops": sum(l.flops for l in layers)}


def weight_bits(dims: dict, bits: Bits) -> dict[str, int]:
    """Stored bits of one member, by part (binary tensors packed, scales and the rest at 32 bits)."""
    h, inter, layers = dims["hidden_size"], dims["intermediate_size"], dims["num_layers"]
    scale_bits = FULL  # one float32 per matrix, or per row
    parts = {}
    vocab = dims["vocab_size"]
    parts["word_embeddings"] = vocab * h * bits.embeddings + (vocab * scale_bits if bits.embeddings < FULL else 0)
    parts["position_type_embeddings"] = (dims["max_position"] + dims["type_vocab_size"]) * h * FULL
    matrices = [(h, h)] * 4 + [(inter, h), (h, inter)]
    per_layer = 0
    for out, k in matrices:
        per_layer += out * k * bits.weights + out * FULL  # weights and bias
        if bits.weights < FULL:
            per_layer += (out if bits.per_row_weight_scales else 1) * scale_bits
    per_layer += 2 * 2 * h * FULL  # two LayerNorms (gain, bias)
    parts["encoder"] = layers * per_layer
    labels = dims["num_labels"]
    head_w = bits.weights if bits.quantize_head else FULL
    parts["head"] = (h * h + labels * h) * head_w + (h + labels) * FULL
    if head_w < FULL:
        parts["head"] += ((h + labels) if bits.per_row_weight_scales else 2) * scale_bits
    parts["embedding_norm"] = 2 * h * FULL
    return parts


def stored_bytes(dims: dict, bits: Bits) -> float:
    return sum(weight_bits(dims, bits).values()) / 8.0
