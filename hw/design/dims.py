"""Model shapes from dimensions alone, for estimates and synthesis of models with no artifact here.

The design-space exploration sizes the accelerator for the built-in model (MiniLM-L6, from its
artifact) and for BERT-base, whose binary members were never trained here. What the hardware
needs of a model besides its parameters is its shape (bebert.hw.design.plan.ModelShape): the products'
dimensions and code formats follow from the layer count, widths and the quantization setting;
the constants' widths (bias, fixed-point range), which only a trained model fixes, are taken
from the built-in model (REFERENCE_WIDTHS), since they depend on the fixed-point format, not on
the model's size. The same holds for the encoder blocks' constants (REFERENCE_ENCODER: the
exponential tables' depth, the probability step, the LayerNorm gains and biases, the embedding
sums), which size the encoder on chip of a shape from dimensions (hw/encoder_units.py).
"""

from __future__ import annotations

from bebert.errors import BebertError
from bebert.sim.fixed import ALPHA_FRAC
from bebert.sim.program import Codes

from .plan import LAYER_PRODUCTS, ModelShape, Product, schedule

# Dimensions as the artifact manifest's ``model`` section gives them.
MINILM_L6 = dict(num_layers=6, hidden_size=384, intermediate_size=1536, num_heads=12, max_position=512, num_labels=2)
BERT_BASE = dict(num_layers=12, hidden_size=768, intermediate_size=3072, num_heads=12, max_position=512, num_labels=2)
# The tests' tiny BERT (tests/conftest.py): a design small enough to synthesize in a minute.
TINY = dict(num_layers=2, hidden_size=32, intermediate_size=64, num_heads=4, max_position=64, num_labels=2)
MODELS = {"minilm": MINILM_L6, "bert-base": BERT_BASE, "tiny": TINY}

# The activation codes of each setting, as the trained models here compile them: BinaryBERT's
# 4-bit signed LSQ codes everywhere for 1-1-4, BiT's bipolar codes for 1-1-1.
SETTINGS = {"1-1-4": Codes(4, signed=True), "1-1-1": Codes(1, signed=True, bipolar=True)}

# Widths of the built-in model's constants (the widest affine bias; the largest fixed-point value).
REFERENCE_WIDTHS = {"bias_bits": 25, "value_bound": 2**30 - 1}

# The built-in model's encoder constants, over both members and every layer (fixed point, FRAC = 24
# fractional bits; EXP_FRAC and PROB_FRAC for the softmax): the deepest exponential table (entries),
# the largest probability step SP, the largest LayerNorm gain and bias, and the largest embedding sum
# (word scale + position + token type). tests/test_hw_encoder_estimates.py checks them against the artifact.
REFERENCE_ENCODER = {"table_depth": 501, "prob_step_bound": 492455, "gain_bound": 25761286,
                     "bias_bound": 27838442, "embedding_bound": 1140085 + 31099014 + 5983829}


def shape_from_dims(name: str, dims: dict, setting: str, members: int, combine: str = "logits") -> ModelShape:
    """The shape of an ensemble of ``members`` BERT members of ``dims`` in ``setting``, joined by
    ``combine``, with equal member weights."""
    if setting not in SETTINGS:
        raise BebertError(f"Unknown quantization setting {setting!r}; choose one of {', '.join(SETTINGS)}.")
    if not isinstance(members, int) or members < 1:
        raise BebertError(f"An ensemble needs a positive whole number of members, not {members!r}.")
    codes = SETTINGS[setting]
    h, inter = dims["hidden_size"], dims["intermediate_size"]
    sizes = {"query": (h, h), "key": (h, h), "value": (h, h), "attention_output": (h, h),
             "ffn_in": (inter, h), "ffn_out": (h, inter)}
    layer = {n: Product(*sizes[n], codes, None if n in ("attention_output", "ffn_out") else codes)
             for n in LAYER_PRODUCTS}
    steps = schedule([layer] * dims["num_layers"], Product(h, h, codes, codes),
                     Product(dims["num_labels"], h, codes, None))
    return ModelShape(name, tuple(steps), dims["num_labels"], dims["max_position"],
                      (1 << ALPHA_FRAC,) * members, combine, **REFERENCE_WIDTHS)
