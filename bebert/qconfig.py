"""Quantization settings of a binary BERT (the W-E-A bit widths and how each is reached), from YAML.

The two settings of the paper, shipped in ``bebert/configs/``:
  * ``w1e1a4.yaml``  BinaryBERT 1-1-4: sign(W) * mean|W|, binary word embeddings, 4-bit LSQ
                     activations on every matrix-product input, attention operands included;
  * ``w1e1a1.yaml``  BiT 1-1-1: mean-centred binary weights, elastic binarization of activations,
                     {0, 1} attention probabilities.
``fp32.yaml`` is the full-precision teacher. The float parts (LayerNorm, softmax, GELU, residual
adds) stay float in every setting; the integer datapath is defined elsewhere.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import BebertError
from .settings import check_settings, parse_yaml

FULL_PRECISION = 32
WEIGHT_BITS = (1, 2, FULL_PRECISION)  # 2 means ternary: the half-width model of weight splitting
EMBEDDING_BITS = (1, FULL_PRECISION)
WEIGHT_QUANTIZERS = ("bwn", "bwn_centered")
WEIGHT_SCALES = ("matrix", "row")


@dataclass(frozen=True)
class QuantConfig:
    """How a BERT is quantized. Bit width 32 means "left in float"."""

    name: str = "fp32"
    weight_bits: int = FULL_PRECISION
    embedding_bits: int = FULL_PRECISION
    activation_bits: int = FULL_PRECISION
    weight_quantizer: str = "bwn"  # bwn: sign(W) mean|W|; bwn_centered: BiT's mean-centred variant
    weight_scale: str = "matrix"  # one scale per matrix, or one per output row
    quantize_attention: bool = True  # Q, K, V and the attention probabilities as well
    quantize_head: bool = True  # pooler and classifier too, so the accelerator runs them
    weight_split: bool = False  # two binary matrices per layer (after ternary weight splitting)

    def __post_init__(self):
        def check(field, value, allowed):
            if value not in allowed:
                raise BebertError(f"Quantization setting {field} must be one of {list(allowed)}, not {value!r}.")

        check("weight_bits", self.weight_bits, WEIGHT_BITS)
        check("embedding_bits", self.embedding_bits, EMBEDDING_BITS)
        check("weight_quantizer", self.weight_quantizer, WEIGHT_QUANTIZERS)
        check("weight_scale", self.weight_scale, WEIGHT_SCALES)
        if self.weight_split and (self.weight_bits != 1 or self.weight_quantizer != "bwn"):
            raise BebertError("weight_split needs 1-bit weights with the bwn quantizer (splitting is exact only for it).")
        for name in ("weight_bits", "embedding_bits", "activation_bits"):
            value = getattr(self, name)
            if type(value) is not int:  # bool and float are not bit widths, even where they compare equal
                raise BebertError(f"Quantization setting {name} must be an integer, not {value!r}.")
        if not (self.activation_bits == FULL_PRECISION or 1 <= self.activation_bits <= 8):
            raise BebertError(
                f"Quantization setting activation_bits must be 1 to 8 or 32, not {self.activation_bits!r}."
            )

    @property
    def bits_label(self) -> str:
        """The W-E-A triple as the papers write it, e.g. "1-1-4"."""
        return "-".join(str(b) for b in (self.weight_bits, self.embedding_bits, self.activation_bits))

    @property
    def is_full_precision(self) -> bool:
        return FULL_PRECISION == self.weight_bits == self.embedding_bits == self.activation_bits

    def replace(self, **changes) -> "QuantConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "the quantization config") -> "QuantConfig":
        return cls(**check_settings(cls, data, source))


def builtin_config_names() -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in resources.files("bebert.configs").iterdir()
                  if p.name.endswith(".yaml"))


def load_quant_config(spec: str | Path) -> QuantConfig:
    """A built-in name ("w1e1a4", "w1e1a1", "fp32") or the path of a YAML file."""
    builtin = resources.files("bebert.configs").joinpath(f"{spec}.yaml")
    path = Path(spec)
    if builtin.is_file():
        text, source = builtin.read_text(), f"built-in config {spec}"
    elif path.is_file():
        text, source = path.read_text(), str(path)
    else:
        raise BebertError(
            f"Quantization config {spec!s} is neither a file nor a built-in name ({', '.join(builtin_config_names())})."
        )
    return QuantConfig.from_dict(parse_yaml(text, source), source)
