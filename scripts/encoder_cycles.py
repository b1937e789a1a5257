"""Cycles per inference of the built-in model with the encoder on chip, by the schedule's event model.

    python scripts/encoder_cycles.py [--pe 64] [--simd 64] [--out results/encoder_schedule.md]

For 32 and 128 tokens and a few lane choices, the pipelined schedule (hw/schedule.py) against the
serial one (one unit at a time) and against today's accelerator, whose products alone run on chip
(hw/accelerator.py run_cycles); then, split by block, where the cycles go. Prints markdown, and
writes it to ``--out`` when given.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bebert.builtin import BUILTIN_DIR
from bebert.hw.accelerator import run_cycles
from bebert.hw.design.config import HardwareConfig
from bebert.hw.design.plan import plan_for
from bebert.hw.encoder_units import encoder_units
from bebert.hw.schedule import inference_cycles
from bebert.sim.ensemble import load_simulation

# (tokens, attention lanes, hidden lanes)
CHOICES = [(32, 2, 8), (32, 4, 8), (32, 4, 16), (32, 8, 16), (128, 4, 8), (128, 8, 8), (128, 8, 16), (128, 16, 16)]
TARGET = 0.25  # issue 15: the encoder's work adds at most 25% to the products' cycles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pe", type=int, default=64)
    parser.add_argument("--simd", type=int, default=64)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    plan = plan_for(load_simulation(BUILTIN_DIR), HardwareConfig(args.pe, args.simd, None, 4))
    lines = [f"# The encoder on chip: cycles per inference (built-in model, PE {args.pe} x SIMD {args.simd})", "",
             "Written by `scripts/encoder_cycles.py` from the schedule's event model (hw/schedule.py) and the",
             "blocks' cycle models. The encoder on chip (hw/encoder_accelerator.py) runs this schedule, and its",
             "cycle counter equals the model (tests/test_hw_encoder_accelerator.py).",
             f"Target: at most {TARGET:.0%} over the products alone.", "",
             "| tokens | attention lanes | hidden lanes | products alone | serial | pipelined | over the products |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    splits = []
    for tokens, attention_lanes, hidden_lanes in CHOICES:
        units = encoder_units(plan, tokens, attention_lanes, hidden_lanes)
        alone = run_cycles(plan, tokens).total
        serial = inference_cycles(plan, units, tokens, serial=True).total
        piped = inference_cycles(plan, units, tokens)
        lines.append(f"| {tokens} | {attention_lanes} | {hidden_lanes} | {alone:,} | {serial:,} | {piped.total:,} | "
                     f"{piped.total / alone - 1:+.1%} |")
        splits.append((tokens, attention_lanes, hidden_lanes, piped))
    lines += ["", "Split by block (pipelined). PE array: busy cycles by step, and the cycles it waits for a unit;",
              "units: cycles their rows occupy them (overlapping the array's).", ""]
    for tokens, attention_lanes, hidden_lanes, cycles in splits:
        busy = ", ".join(f"{k} {v:,}" for k, v in cycles.pe_busy.items())
        waits = ", ".join(f"{k} {v:,}" for k, v in cycles.pe_waits.items()) or "none"
        units = ", ".join(f"{k} {v:,}" for k, v in cycles.unit_busy.items())
        lines.append(f"- {tokens} tokens, lanes {attention_lanes}/{hidden_lanes}: total {cycles.total:,}; PE busy "
                     f"{cycles.pe_busy_total:,} ({busy}); PE waits on {waits}; units busy: {units}.")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
