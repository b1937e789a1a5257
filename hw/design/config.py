"""The accelerator's parameters, checked at once with one sentence that quotes the bad value.

* ``pe``: output lanes of the PE array (rows of a weight matrix computed at once);
* ``simd``: input bits per lane per cycle (columns of the matrix consumed at once);
* ``members``: ensemble members whose parameters are resident on chip. With fewer than the
  ensemble has, every member's parameters stream in through the load port before it runs;
* ``act_bits``: the widest activation code the PE array takes (4 for BinaryBERT 1-1-4, 1 for BiT
  1-1-1); a b-bit code runs bit-serially in b passes, a 1-bit one in one;
* ``param_width``: None, the parameters of the members are resident (``members``); or the width in
  bits of the parameter stream (a power of two, 32 to 1024) through which the encoder on chip takes
  every layer's parameters while the layer before computes, into two layer slots (streamed).

Any PE and SIMD work: the last fold of a matrix is padded (zero weights, masked activations), so
nothing has to divide. What cannot work is refused: zero or negative values, fewer activation
bits than the model's codes, more members or more lanes than the model has.
"""

from __future__ import annotations

from dataclasses import dataclass

from bebert.errors import BebertError

MAX_ACT_BITS = 8
PARAM_WIDTHS = tuple(2**n for n in range(5, 11))  # the parameter stream's widths: 32 to 1024 bits


class ConfigError(BebertError):
    """A hardware configuration that cannot work (one sentence, quotes the value)."""


@dataclass(frozen=True)
class HardwareConfig:
    pe: int = 64
    simd: int = 64
    members: int | None = None  # None: every member of the ensemble resident
    act_bits: int = 4
    param_width: int | None = None  # None: resident parameters; else the parameter stream's bits

    def __post_init__(self):
        for name in ("pe", "simd", "act_bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, not {value!r}.")
        if self.members is not None and (not isinstance(self.members, int) or self.members < 1):
            raise ConfigError(f"--members must be a positive integer, not {self.members!r}.")
        if self.act_bits > MAX_ACT_BITS:
            raise ConfigError(f"--act-bits must be at most {MAX_ACT_BITS}, not {self.act_bits}.")
        if self.param_width is not None:
            if self.param_width not in PARAM_WIDTHS:
                raise ConfigError(f"--param-width must be a power of two from {PARAM_WIDTHS[0]} to "
                                  f"{PARAM_WIDTHS[-1]} bits, not {self.param_width!r}.")
            if self.members is not None:
                raise ConfigError("--members (resident members) and --param-width (streamed layers) exclude "
                                  "each other; choose one.")

    @property
    def streamed(self) -> bool:
        """Whether the parameters stream in a layer at a time (``param_width``) instead of being resident."""
        return self.param_width is not None

    def resident(self, ensemble_members: int) -> int:
        """Members resident on chip for an ensemble of ``ensemble_members`` (none when streamed)."""
        if self.streamed:
            return 0
        if self.members is None:
            return ensemble_members
        if self.members > ensemble_members:
            raise ConfigError(f"--members {self.members} exceeds the model's {ensemble_members} ensemble member(s).")
        return self.members
