"""The headline estimate: BEBERT on a board, inferences per second from the exact cycle model.

    python scripts/headline_estimate.py [--device zu9eg] [--tokens 128] [--out results/headline.md]

For each model (BERT-base BEBERT 1-1-4 with 2 members, BERT-base BiT 1-1-1 with 2 members, the
built-in model), every design point of a grid (PE, SIMD, attention and hidden lanes, and how the
parameters are held: resident, or streamed a layer at a time through a W-bit stream fed from the
board's external memory) is costed as `bebert-hw dse` costs it on the device (flows/dse.py): cycles
of one inference of ``--tokens`` tokens from the encoder on chip's event model (hw/schedule.py, the
parameter stream a beat every W x clock / bandwidth cycles at most), resources from the resource
model, judged against the device's budgets (hw/design/devices.py). The report gives the fastest
point that fits, with its resources by block, or, if none fits, the point that comes closest and
the budget that stops it; and, budgets aside, the fastest point of the grid and what its PE array
waits for. FQ-BERT (BERT-base W4A8 on a ZCU102) runs 22.8 inferences/s; the target (issue 16) is
ten times that for BERT-base 1-1-4 x2. Bad input: one sentence, exit 2, no report.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from bebert.errors import BebertError
from bebert.hw.design.devices import DEVICES, Assessment, Device, assess, device
from bebert.hw.design.dims import SETTINGS
from bebert.hw.flows.dse import (TIMING_FILE, DesignPoint, beat_interval, binary_macs, measured_clock, parse_model,
                                 point_cycles, point_resources, stream_bits, traffic_bits)
from bebert.hw.resources import Resources, total

REPO = Path(__file__).resolve().parents[1]
HEADLINE_MODELS = ("bert-base:1-1-4:2", "bert-base:1-1-1:2", "builtin")
FQ_BERT_PER_S = 22.8  # FQ-BERT, BERT-base W4A8, 128 tokens, ZCU102 at 214 MHz (43.9 ms)
TARGET_PER_S = 228.0  # issue 16: ten times FQ-BERT, for BERT-base 1-1-4 x2
BRAM_READ_BITS = {"xilinx": 72, "ecp5": 36}  # one read port's widest word: a RAMB36 (SDP), a DP16KD
GRID = {"pe": (32, 64, 128, 256, 512), "simd": (64, 128, 256), "attention_lanes": (4, 16),
        "hidden_lanes": (8, 32), "param_width": (None, 512, 1024)}


@dataclass
class Costed:
    model: str
    pe: int
    simd: int
    attention_lanes: int
    hidden_lanes: int
    param_width: int | None
    cycles: int
    waits: dict
    blocks: dict[str, Resources]
    verdict: Assessment
    beat_interval: float
    stream_bits: int  # parameter-stream bits per inference (0: resident)
    macs: int  # binary MACs of one inference (a bit plane's product counts once)

    @property
    def held(self) -> str:
        return f"streamed, {self.param_width}-bit" if self.param_width else "resident"

    @property
    def overflow(self) -> float:
        return max(self.verdict.share.values())


def cost(spec: str, pe: int, simd: int, attention: int, hidden: int, width: int | None, tokens: int,
         target: Device, clock_mhz: float) -> Costed | None:
    """One design point, built for sentences of ``tokens`` tokens, costed as the DSE costs it on
    ``target`` (flows/dse.py); None where it cannot be built."""
    _, setting, members = parse_model(spec)
    point = DesignPoint(spec, pe, simd, 0 if width else members, SETTINGS[setting].bits, "multiplexed", True, tokens,
                        attention, hidden, width or 0)
    if point.problem():
        return None
    plan = point.plan()
    interval = beat_interval(point, target, clock_mhz) if width else 1.0
    cycles = point_cycles(point, tokens, plan, interval)
    blocks = point_resources(point, plan)
    verdict = assess(target, total(blocks), cycles["total"], clock_mhz, traffic_bits(point, tokens, plan))
    return Costed(spec, pe, simd, attention, hidden, width, cycles["total"], cycles["wait_causes"], blocks, verdict,
                  interval, stream_bits(plan), binary_macs(plan, tokens))


def best(points: list[Costed]) -> tuple[Costed, bool]:
    """The fastest point that fits, else the one that overflows its worst budget least."""
    fitting = [p for p in points if p.verdict.fits]
    if fitting:
        return max(fitting, key=lambda p: p.verdict.sentences_per_s), True
    return min(points, key=lambda p: (p.overflow, p.cycles)), False


def fastest(points: list[Costed]) -> Costed:
    """The point of fewest cycles, budgets aside: how far the grid's compute reaches."""
    return min(points, key=lambda p: p.cycles)


def bram36(r: Resources) -> float:
    """Block RAM in RAMB36 (a RAMB18 is half of one)."""
    return r.bram36 + r.bram18 / 2


def block_order(p: Costed):
    """Blocks by their use of the budget that binds the point: block RAM where that stops it, else LUTs."""
    return (lambda kv: -bram36(kv[1])) if p.verdict.bound == "bram" else (lambda kv: -kv[1].lut)


def render(results: dict[str, tuple[Costed, bool, int]], reaches: dict[str, Costed], target, clock_mhz: float,
           clock_note: str, tokens: int, seconds: float) -> str:
    units = target.units
    lines = [
        "# The headline estimate: BEBERT on a board",
        "",
        f"Written by `python scripts/headline_estimate.py --device {target.name} --tokens {tokens}` in {seconds:.0f} s. "
        f"Device: {target.part} ({target.board}), {target.lut:,} {units['lut']}, {target.ff:,} FF, "
        f"{target.bram:,} {units['bram']}, {target.dsp:,} {units['dsp']}; {target.memory}, "
        f"{target.bandwidth_gb_s} GB/s; clock {clock_mhz:g} MHz: {clock_note}. Sentences of {tokens} tokens. "
        "Cycles from the encoder on chip's event model (hw/schedule.py; cycle exact against the RTL in "
        "co-simulation), the parameter stream at the board's bandwidth; resources from the resource model "
        "(checked against Yosys in results/resources.md). Grid: "
        + ", ".join(f"{k} {'/'.join(str(v or 'resident') for v in values)}" for k, values in GRID.items()) + ".",
        "",
        f"FQ-BERT (BERT-base W4A8, ZCU102 at 214 MHz): {FQ_BERT_PER_S} inferences/s. Target for BERT-base "
        f"1-1-4 x2: {TARGET_PER_S:g}/s.",
        "",
        "| model | fits | design point | parameters | inferences/s | latency ms | x FQ-BERT | "
        f"{units['lut']} | FF | {units['bram']} | {units['dsp']} | bandwidth used | bound |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for spec, (p, fits, count) in results.items():
        v = p.verdict
        rate = v.sentences_per_s if fits else 0.0
        latency = 1e3 * p.cycles / (clock_mhz * 1e6)
        used = {f: f"{v.used[f]:,.0f} ({100 * v.share[f]:.0f}%)" for f in v.used}
        lines.append(
            f"| {spec} | {'yes' if fits else 'no'} | PE {p.pe} x SIMD {p.simd}, {p.attention_lanes} attention / "
            f"{p.hidden_lanes} hidden lanes | {p.held} | {rate:,.1f} | {latency:.2f} | "
            f"{rate / FQ_BERT_PER_S:.2f} | {used['lut']} | {used['ff']} | {used['bram']} | {used['dsp']} | "
            f"{100 * (v.bandwidth_share or 0):.0f}% | {v.bound} |")
    lines += ["", "Latency is one inference's cycles at the clock; where nothing fits, the row is the point that "
              "overflows its worst budget least, and its inferences/s are 0.", ""]
    for spec, (p, fits, count) in results.items():
        lines += [f"## {spec}: {'the fastest fitting point' if fits else 'closest point (does not fit)'} "
                  f"of {count} costed", "",
                  f"PE {p.pe} x SIMD {p.simd}, {p.attention_lanes} attention lanes, {p.hidden_lanes} hidden lanes, "
                  f"parameters {p.held}" + (f" (a beat every {p.beat_interval:.3f} cycles; "
                                            f"{p.stream_bits / 1e6:.1f} Mbit streamed per inference)"
                                            if p.param_width else "") + f": {p.cycles:,} cycles; the PE array waits "
                  + ", ".join(f"{k} {n:,}" for k, n in sorted(p.waits.items())) + " cycles.", "",
                  "| block | LUT | FF | RAMB36 | RAMB18 | DSP48 |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for name, r in sorted(p.blocks.items(), key=block_order(p)):
            if r.lut + r.lutram + r.ff + r.bram36 + r.bram18 + r.dsp:
                lines.append(f"| {name} | {r.lut + r.lutram:,.0f} | {r.ff:,} | {r.bram36:,} | {r.bram18:,} | {r.dsp:,} |")
        lines.append("")
    lines += ["## How far the grid's compute reaches", "",
              f"The point of fewest cycles per model, budgets aside (its inferences/s at {clock_mhz:g} MHz if the "
              "device could hold it), and each budget's use there:", "",
              f"| model | design point | parameters | cycles | inferences/s | {units['lut']} | FF | {units['bram']} | "
              f"{units['dsp']} | bandwidth | the PE array waits for |",
              "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for spec, p in reaches.items():
        v = p.verdict
        lines.append(f"| {spec} | PE {p.pe} x SIMD {p.simd}, {p.attention_lanes} / {p.hidden_lanes} lanes | {p.held} | "
                     f"{p.cycles:,} | {clock_mhz * 1e6 / p.cycles:,.1f} | "
                     + " | ".join(f"{100 * v.share[f]:.0f}%" for f in ("lut", "ff", "bram", "dsp"))
                     + f" | {100 * (v.bandwidth_share or 0):.0f}% | "
                     + ", ".join(f"{k} {n:,}" for k, n in sorted(p.waits.items())) + " cycles |")
    lines += ["", f"{TARGET_PER_S:g} inferences/s at {clock_mhz:g} MHz is {clock_mhz * 1e6 / TARGET_PER_S:,.0f} cycles "
              "an inference.", ""] + target_needs(reaches, target, clock_mhz)
    return "\n".join(lines)


def target_needs(reaches: dict[str, Costed], target: Device, clock_mhz: float) -> list[str]:
    """What the target rate asks of this dataflow, per model: every pass of the PE array reads a
    weight bit per MAC from block RAM (a weight word serves one bit plane of one token), so at the
    target the array must read ``MACs / cycles`` weight bits a cycle even if it never waited, against
    the device's block RAM read ports (each tile's widest read); and a PE array that wide costs LUTs
    at the rate the resource model gives the grid's fastest point's array."""
    cycles = clock_mhz * 1e6 / TARGET_PER_S
    ceiling = target.bram * BRAM_READ_BITS[target.fabric]
    lines = ["## What the target asks of this dataflow", "",
             f"At {TARGET_PER_S:g} inferences/s every inference has {cycles:,.0f} cycles. The PE array reads one weight bit "
             "from block RAM for every binary MAC (a weight word serves one bit plane of one token), so it must read "
             f"MACs / cycles weight bits a cycle, with no cycle spent waiting; the device's block RAM reads at most "
             f"{ceiling:,} bits a cycle ({target.bram:,} tiles x {BRAM_READ_BITS[target.fabric]} bits, one read port "
             "each, every tile holding weights). A PE array that wide costs LUTs at the rate of the grid's fastest "
             "point's array (the resource model).", "",
             f"| model | binary MACs an inference | weight bits a cycle at {TARGET_PER_S:g}/s | of the block RAM read "
             f"ceiling | PE array LUTs a MAC lane | PE array {target.units['lut']} at that width | of the device |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for spec, p in reaches.items():
        lanes = p.macs / cycles
        per_lane = p.blocks["pe_array"].lut / (p.pe * p.simd)
        lines.append(f"| {spec} | {p.macs / 1e9:,.1f} G | {lanes:,.0f} | {100 * lanes / ceiling:.0f}% | {per_lane:.2f} | "
                     f"{lanes * per_lane:,.0f} | {100 * lanes * per_lane / target.lut:.0f}% |")
    return lines + ["", "Above 100% of the read ceiling the target needs a dataflow that reads each weight word once "
                    "for several tokens or bit planes (weights held while the activations change), not more tiles.", ""]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="zu9eg", help=f"target device: {', '.join(DEVICES)} (default zu9eg)")
    parser.add_argument("--tokens", type=int, default=128, help="sentence length (default 128, FQ-BERT's)")
    parser.add_argument("--out", default=str(REPO / "results" / "headline.md"))
    args = parser.parse_args(argv)
    try:
        target = device(args.device)
    except BebertError as exc:
        print(exc, file=sys.stderr)
        return 2
    clock_mhz, clock_note = ((target.clock_mhz, target.clock_note) if target.clock_mhz is not None
                             else measured_clock(REPO / TIMING_FILE))
    if args.tokens < 1:
        print(f"--tokens must be a positive whole number, not {args.tokens}.", file=sys.stderr)
        return 2
    started = time.perf_counter()
    results, reaches = {}, {}
    for spec in HEADLINE_MODELS:
        grid = list(itertools.product(*GRID.values()))
        points = [p for p in (cost(spec, *point, args.tokens, target, clock_mhz)
                              for point in tqdm(grid, desc=spec, unit="point")) if p]
        if not points:
            print(f"No design point of the grid can be built for {spec} with sentences of {args.tokens} tokens.",
                  file=sys.stderr)
            return 2
        p, fits = best(points)
        results[spec], reaches[spec] = (p, fits, len(points)), fastest(points)
        print(f"{spec}: {'fits' if fits else 'does not fit'}: PE {p.pe} x SIMD {p.simd}, {p.held}, "
              f"{p.verdict.sentences_per_s if fits else 0:.1f} inferences/s ({p.cycles:,} cycles), bound {p.verdict.bound}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")  # written whole, then renamed: never a half-written report
    partial.write_text(render(results, reaches, target, clock_mhz, clock_note, args.tokens, time.perf_counter() - started))
    partial.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
