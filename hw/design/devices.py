"""Target devices: what a board offers a design, and whether a design point fits it.

A ``Device`` holds a part's budgets in its own primitives (LUTs, flip-flops, block RAM tiles,
multipliers) and its board's external-memory bandwidth. ``usage`` turns the resource model's
figures (7-series-class Xilinx cells, hw/resources.py) into those primitives; ``assess`` says
whether a point fits, which resource stops it if not, and, if it fits, what bounds its rate
(compute, or the external memory feeding it).

Xilinx parts take the model's cells as they are (LUTs as logic and as memory against the LUT
budget, a RAMB18 as half a RAMB36). The ECP5 has 4-input LUTs and 18-kbit DP16KD block RAMs: a
RAMB18 maps to one DP16KD and a RAMB36 to two, and a DSP48 to one MULT18X18D (exact on both
designs routed in results/timing.yaml); LUT4s and flip-flops are the model's LUTs (carry cells
included) and flip-flops times factors measured on those two routed designs, taking the larger
ratio of the two, so that a point marked as fitting is not an optimistic guess. Place and route
(scripts/timing_check.py) is the check that counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from bebert.errors import BebertError

from ..resources import Resources

BUDGET_FIELDS = ("lut", "ff", "bram", "dsp")

# ECP5 cells per model cell, the larger of the two routed designs in results/timing.yaml (the pin
# wrapper's own cells taken off): LUT4 sites per model LUT (logic + carry) 1.64 and 1.96, flip-flops
# per model flip-flop 4.41 and 3.97 (the ECP5 flow keeps in flip-flops what the Xilinx flow puts in
# its block RAMs' and DSPs' registers).
ECP5_LUT4_PER_LUT = 1.96
ECP5_FF_PER_FF = 4.41


@dataclass(frozen=True)
class Device:
    name: str  # what --device takes
    part: str
    board: str
    fabric: str  # "xilinx" (LUT6, RAMB36, DSP48) or "ecp5" (LUT4, DP16KD, MULT18X18D)
    lut: int
    ff: int
    bram: int  # RAMB36 tiles (xilinx) or DP16KD tiles (ecp5)
    dsp: int
    memory: str  # the board's external memory
    bandwidth_gb_s: float  # its peak bandwidth, 10^9 bytes per second
    clock_mhz: float | None  # the clock assumed on this device; None: the measured fmax (results/timing.yaml)
    clock_note: str

    @property
    def column(self) -> str:
        """The prefix of this device's columns in dse.csv (``ecp5_85f_fits``, ...)."""
        return self.name.replace("-", "_")

    @property
    def units(self) -> dict[str, str]:
        if self.fabric == "ecp5":
            return {"lut": "LUT4", "ff": "FF", "bram": "DP16KD", "dsp": "MULT18X18D"}
        return {"lut": "LUT", "ff": "FF", "bram": "RAMB36", "dsp": "DSP48"}


DEVICES = {
    "zu9eg": Device("zu9eg", "Zynq UltraScale+ XCZU9EG", "ZCU102", "xilinx", lut=274_080, ff=548_160, bram=912,
                    dsp=2_520, memory="DDR4-2400, 64 bits", bandwidth_gb_s=19.2, clock_mhz=200.0,
                    clock_note="200 MHz assumed (not routed on this part)"),
    "ecp5-85f": Device("ecp5-85f", "Lattice LFE5U-85F", "ULX3S", "ecp5", lut=83_640, ff=83_640, bram=208, dsp=156,
                       memory="SDR SDRAM, 16 bits at 166 MHz", bandwidth_gb_s=0.332, clock_mhz=None,
                       clock_note="the measured fmax (results/timing.yaml)"),
}


class UnknownDevice(BebertError):
    """A device name that is not in DEVICES."""


def device(name: str) -> Device:
    try:
        return DEVICES[name.lower()]
    except KeyError:
        raise UnknownDevice(f"Unknown device {name!r}; the devices are {', '.join(DEVICES)}.") from None


def usage(target: Device, resources: Resources) -> dict[str, float]:
    """The design's use of each budget of ``target``, in the device's own primitives."""
    if target.fabric == "ecp5":
        return {"lut": ECP5_LUT4_PER_LUT * (resources.lut + resources.lutram + resources.carry),
                "ff": ECP5_FF_PER_FF * resources.ff, "bram": 2 * resources.bram36 + resources.bram18,
                "dsp": resources.dsp}
    return {"lut": resources.lut + resources.lutram, "ff": resources.ff,
            "bram": resources.bram36 + resources.bram18 / 2, "dsp": resources.dsp}


@dataclass(frozen=True)
class Assessment:
    fits: bool
    bound: str  # the budget that does not fit (lut, ff, bram, dsp), else "compute" or "bandwidth"
    used: dict[str, float]  # per budget, in the device's primitives
    share: dict[str, float]  # per budget, used / available
    sentences_per_s: float  # at the device's clock, capped by the external memory (0 if it does not fit)
    bandwidth_share: float | None  # external traffic at the compute rate / bandwidth (None: not assessed)


def assess(target: Device, resources: Resources, cycles: int, clock_mhz: float,
           traffic_bits: int | None) -> Assessment:
    """Does a design of ``resources`` fit ``target``, and what bounds it there? ``cycles`` per
    inference at ``clock_mhz``; ``traffic_bits``: external-memory bits one inference reads or
    writes (None where the design's traffic is not modelled)."""
    used = usage(target, resources)
    share = {f: used[f] / getattr(target, f) for f in BUDGET_FIELDS}
    worst = max(BUDGET_FIELDS, key=share.get)
    compute_rate = clock_mhz * 1e6 / cycles
    bandwidth_share = None if traffic_bits is None else traffic_bits * compute_rate / (8 * target.bandwidth_gb_s * 1e9)
    if share[worst] > 1:
        return Assessment(False, worst, used, share, 0.0, bandwidth_share)
    if bandwidth_share is not None and bandwidth_share > 1:
        return Assessment(True, "bandwidth", used, share, compute_rate / bandwidth_share, bandwidth_share)
    return Assessment(True, "compute", used, share, compute_rate, bandwidth_share)
