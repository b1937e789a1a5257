"""FPGA resources: what one block costs, as the resource models predict it and as synthesis counts it.

The target is a 7-series-class Xilinx fabric (LUT6, FDRE, RAMB36E1/RAMB18E1, DSP48E1), the part
family Yosys' ``synth_xilinx`` maps to. Categories follow Vivado's utilisation report:

* ``lut``: LUTs used as logic (LUT1..LUT6, INV);
* ``lutram``: LUTs used as memory (distributed RAM, shift registers);
* ``ff``: flip-flops;
* ``bram36`` / ``bram18``: block RAM tiles (a RAMB36 holds 36 kbit, a RAMB18 half of one);
* ``dsp``: DSP48 slices;
* ``carry``: CARRY4 chains, reported apart (they sit beside the LUTs, not in them).

Each block's resource model lives next to its RTL and cycle model (pe_array.py, output_unit.py,
ensemble_unit.py, param_memory.py, accelerator.py); this module only holds the arithmetic they
share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path

import yaml

RESOURCE_FIELDS = ("lut", "ff", "lutram", "bram36", "bram18", "dsp", "carry")

# Yosys' Xilinx cell names by resource category.
_CELLS = {
    "lut": ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "INV"),
    "ff": ("FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE"),
    "lutram": ("RAM32X1D", "RAM64X1D", "RAM128X1D", "RAM256X1S", "RAM32M", "RAM64M", "RAM32M16", "RAM64M8",
               "RAM32X1S", "RAM64X1S", "RAM128X1S", "SRL16E", "SRLC32E"),
    "bram36": ("RAMB36E1", "RAMB36E2"),
    "bram18": ("RAMB18E1", "RAMB18E2"),
    "dsp": ("DSP48E1", "DSP48E2"),
    "carry": ("CARRY4", "CARRY8"),
}
# LUTs a distributed-RAM cell occupies (a RAM64M is four LUTs of one slice, etc.).
_LUTRAM_LUTS = {"RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1S": 4, "RAM32M": 4, "RAM64M": 4,
                "RAM32M16": 8, "RAM64M8": 8, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "SRL16E": 1, "SRLC32E": 1}


@dataclass(frozen=True)
class Resources:
    lut: float = 0
    ff: float = 0
    lutram: float = 0
    bram36: float = 0
    bram18: float = 0
    dsp: float = 0
    carry: float = 0

    def __add__(self, other: "Resources") -> "Resources":
        return Resources(*(getattr(self, f) + getattr(other, f) for f in RESOURCE_FIELDS))

    def __mul__(self, times: float) -> "Resources":
        return Resources(*(getattr(self, f) * times for f in RESOURCE_FIELDS))

    __rmul__ = __mul__

    @property
    def bram_bits(self) -> int:
        """Block RAM capacity the tiles occupy, in bits (36 kbit and 18 kbit tiles)."""
        return int(self.bram36 * 36 * 1024 + self.bram18 * 18 * 1024)

    @property
    def bram36_equivalent(self) -> float:
        return self.bram36 + self.bram18 / 2

    @classmethod
    def from_cells(cls, cells: dict[str, int]) -> "Resources":
        """Resources of a synthesized netlist from Yosys' cell counts by type (``stat -json``)."""
        counts = {name: 0 for name in RESOURCE_FIELDS}
        for category, names in _CELLS.items():
            for name in names:
                n = int(cells.get(name, 0))
                counts[category] += n * (_LUTRAM_LUTS[name] if category == "lutram" else 1)
        return cls(**counts)


def total(parts: dict[str, Resources]) -> Resources:
    return sum(parts.values(), Resources())


assert tuple(f.name for f in fields(Resources)) == RESOURCE_FIELDS


CALIBRATION = Path(__file__).with_name("calibration.yaml")


@cache
def coefficients(block: str) -> dict[str, float]:
    """A block's fitted LUT coefficients (hw/calibration.yaml, written by scripts/resource_check.py
    --fit --write from synthesis of this RTL)."""
    return dict(yaml.safe_load(CALIBRATION.read_text())["lut_coefficients"][block])


def store_lut_coefficients(fitted: dict[str, dict[str, float]]) -> None:
    """Write blocks' fitted LUT coefficients into hw/calibration.yaml, keeping its header comment and
    every other block's."""
    calibration = yaml.safe_load(CALIBRATION.read_text())
    calibration["lut_coefficients"].update(fitted)
    header = "".join(line + "\n" for line in CALIBRATION.read_text().splitlines() if line.startswith("#"))
    CALIBRATION.write_text(header + yaml.safe_dump(calibration, default_flow_style=None, sort_keys=False))


def linear_cost(coefficients: dict[str, float], features: dict[str, float]) -> float:
    """A FINN-R-style cost: a sum of fitted coefficients times the structure counts of a block
    (scripts/resource_check.py --fit finds the coefficients by least squares on synthesis)."""
    return sum(coefficients[name] * features[name] for name in coefficients)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def multiply_dsps(a_bits: int, b_bits: int) -> int:
    """DSP48E1 slices of a signed a x b product as Yosys tiles it: the wider operand on the 25-bit
    port, 24 x 17 bits of magnitude per slice."""
    wide, narrow = max(a_bits, b_bits), min(a_bits, b_bits)
    return ceil_div(wide - 1, 24) * ceil_div(narrow - 1, 17)


# Block RAM geometries of a 7-series RAMB36E1 (simple dual port: one read, one write port) as
# (words, bits per word), and those of a RAMB18E1, which costs half a RAMB36.
RAMB36_GEOMETRIES = ((512, 72), (1024, 36), (2048, 18), (4096, 9), (8192, 4), (16384, 2), (32768, 1))
RAMB18_GEOMETRIES = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))


def usable_width(native: int, chunk: int | None) -> int:
    """The width a tile of a native geometry ``native`` bits wide is used at: all of it, or for a memory
    written ``chunk`` bits at a time (a power of two), the widest power of two that fits the native
    width and divides the chunk (a RAMB36 as 512 x 64 instead of 512 x 72), so that every tile column
    lies within one chunk."""
    return native if chunk is None else min(chunk, 1 << (native.bit_length() - 1))


def tile_geometry(depth: int, width: int, chunk: int | None = None) -> tuple[int, int, bool]:
    """The block-RAM geometry (words, bits, is RAMB36) whose grid holds depth x width in the fewest
    RAMB36 equivalents; ties go to fewer rows (a smaller read mux), then to RAMB36 tiles. Yosys'
    memory mapping picks the same for the inferred RAMs measured here, except where it mixes
    geometries within one memory (results/residual_stream_resources.md). A memory written ``chunk``
    bits at a time (a power of two; param_memory.py) takes only tile widths that
    divide the chunk (``usable_width``)."""
    if chunk is not None and (chunk < 1 or chunk & (chunk - 1)):
        raise ValueError(f"a write chunk must be a power of two, not {chunk}")
    options = [(ceil_div(depth, d) * ceil_div(width, w) * (1.0 if big else 0.5), ceil_div(depth, d), not big, d, w)
               for big, geometries in ((True, RAMB36_GEOMETRIES), (False, RAMB18_GEOMETRIES))
               for d, w in ((d, usable_width(native, chunk)) for d, native in geometries)]
    _, _, small, d, w = min(options)
    return d, w, not small


MUX_LUTS_PER_INPUT = 0.6  # Yosys' n:1 row mux: 2 LUTs per bit at 5:1, 12.5 at 21:1 (synth_xilinx, measured)


def mux_luts(inputs: int) -> int:
    """LUTs of an n:1 multiplexer of one bit as synthesis maps it: one LUT6 up to 4:1 (a LUT6 is a
    4:1 mux), then about 0.6 LUT per further input."""
    return 0 if inputs <= 1 else 1 if inputs <= 4 else round(MUX_LUTS_PER_INPUT * (inputs - 1))


def block_ram_grid(depth: int, width: int, chunk: int | None = None) -> tuple[int, Resources]:
    """(rows, resources) of a grid of one block-RAM geometry (``tile_geometry``, with its write
    ``chunk``) holding depth x width: its tiles and the read mux over its rows."""
    d, w, big = tile_geometry(depth, width, chunk)
    rows = ceil_div(depth, d)
    tiles = rows * ceil_div(width, w)
    return rows, Resources(lut=width * mux_luts(rows), bram36=tiles if big else 0, bram18=0 if big else tiles)


def row_buffer(width: int, depth: int, shared_address: bool, group_bits: int | None = None) -> Resources:
    """An inferred RAM of ``depth`` words of ``width`` bits with a registered read port, as Yosys
    maps it on 7-series parts. Up to 32 words: RAM32M cells, four LUTs holding 8 bits when the write
    and the read share one address (``shared_address``), 6 bits when they do not; up to 64 words:
    RAM64X1S (a LUT a bit) with a shared address, RAM64M (four LUTs, 3 bits) without; deeper: block
    RAM tiles (``tile_geometry``), with a read mux over their rows. Distributed RAM reads into fabric
    flip-flops; block RAM keeps its read register inside the tile. A RAM written in groups of
    ``group_bits`` (a write enable per group) holds each group in whole cells (distributed RAM) or
    whole 9-bit bytes (block RAM, ``byte_lane_grid``)."""
    groups, group = (ceil_div(width, group_bits), group_bits) if group_bits and group_bits < width else (1, width)
    if depth <= 64:
        bits_per_cell, luts_per_cell = ((8 if shared_address else 6, 4) if depth <= 32
                                        else (1, 1) if shared_address else (3, 4))
        return Resources(lutram=luts_per_cell * groups * ceil_div(group, bits_per_cell), ff=width)
    if groups > 1:
        return byte_lane_grid(depth, groups, group)[1]
    return block_ram_grid(depth, width)[1]


# Yosys' costs of a RAMB36 and a RAMB18 tile (share/xilinx/brams_xc4v.txt), by which it maps inferred RAMs.
RAMB36_COST, RAMB18_COST = 257, 129


def byte_lane_grid(depth: int, groups: int, group_bits: int) -> tuple[int, Resources]:
    """(rows, resources) of an inferred RAM written in ``groups`` groups of ``group_bits`` bits (a
    write enable each), as Yosys maps it: every group in whole 9-bit bytes of a tile (a 32-bit group
    takes four), so only the 9-, 18-, 36- and 72-bit geometries serve; the grid of least cost
    (RAMB36_COST, RAMB18_COST), ties to fewer rows; a read mux over the rows."""
    lane_bytes = groups * ceil_div(group_bits, 9)
    options = []
    for big, geometries in ((True, RAMB36_GEOMETRIES), (False, RAMB18_GEOMETRIES)):
        for d, w in geometries:
            if w % 9 == 0:
                rows, tiles = ceil_div(depth, d), ceil_div(depth, d) * ceil_div(lane_bytes, w // 9)
                options.append((tiles * (RAMB36_COST if big else RAMB18_COST), rows, tiles, big))
    _, rows, tiles, big = min(options)
    width = groups * group_bits
    return rows, Resources(lut=width * mux_luts(rows), bram36=tiles if big else 0, bram18=0 if big else tiles)


def finn_r_mvau_luts(pe: int, simd: int, weight_bits: int, act_bits: int, mw: int, out_bits: int,
                     tmem: int) -> float:
    """FINN-R's LUT estimate of a matrix-vector-activation unit (Blott et al., FINN-R, ACM TRETS
    2018), as FINN's MVAU cost model states it: c0 + c1 * PE * (multipliers + adder tree +
    accumulator + thresholds in LUTRAM + comparators), c0 = 300, c1 = 1.1, for ``weight_bits`` x
    ``act_bits`` products over ``mw`` inputs, ``out_bits``-bit outputs by 2^out_bits - 1 thresholds
    of ``tmem`` words, multipliers in LUTs. For comparison only; our own models are the blocks'."""
    w, a = weight_bits, act_bits
    mult = simd * (2 * ceil_div(w + a, 6) - 1) * (w + a)
    adder_tree = (w + a) * (2 * simd - 1)
    acc_bits = w + a + math.ceil(math.log2(mw))
    thresholds = (2**out_bits - 1) * acc_bits * ceil_div(tmem, 64) if out_bits else 0
    comparators = (2**out_bits - 1) * acc_bits if out_bits else 0
    return 300 + 1.1 * pe * (mult + adder_tree + acc_bits + thresholds + comparators)
