"""Synthesis of a whole accelerator with its parameter images: Yosys maps every memory tile, contents
included, into block RAM (RAMB36E1/RAMB18E1 for Xilinx 7-series, DP16KD for the ECP5).

    python scripts/synth_with_images.py [--artifact DIR] [--pe 64] [--simd 64] [--target xilinx ecp5]
                                        [--work runs/synth_images] [--out results/synth_images.yaml]

For each target the generated folder (`bebert-hw gen`) is synthesized with its images by
bebert.hw.flows.postsynth.synthesize_with_images, which checks that every tile's initial contents, as
Yosys carries them into memory mapping, equal its image file bit for bit. This script also checks
that the Xilinx block RAMs equal the resource model's count (the ECP5's DP16KD holds 18 kbit, so its
count is printed beside it) and prints and records block RAMs, LUTs, flip-flops, wall time and the
Yosys version.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

from bebert.builtin import BUILTIN_DIR
from bebert.errors import BebertError
from bebert.hw.accelerator import accelerator_resources, image_folders
from bebert.hw.generator.gen import TOP, configure, generate, verilog_sources
from bebert.hw.generator.images import MEMORIES
from bebert.hw.design.plan import plan_for
from bebert.hw.flows.postsynth import MAPPING, synthesize_with_images
from bebert.hw.flows.synth import yosys_version
from bebert.sim.ensemble import load_simulation

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", default=str(BUILTIN_DIR))
    parser.add_argument("--pe", type=int, default=64)
    parser.add_argument("--simd", type=int, default=64)
    parser.add_argument("--target", nargs="*", choices=sorted(MAPPING), default=["xilinx", "ecp5"])
    parser.add_argument("--work", default=str(REPO / "runs" / "synth_images"))
    parser.add_argument("--out", default=str(REPO / "results" / "synth_images.yaml"))
    args = parser.parse_args(argv)
    simulation = load_simulation(args.artifact)
    plan = plan_for(simulation, configure(simulation, args.pe, args.simd, None, None))
    name = f"pe{args.pe}-simd{args.simd}-a{plan.config.act_bits}"
    folder = Path(args.work) / name
    generate(plan, folder, force=True)
    model = accelerator_resources(plan)
    model_brams = {"RAMB36E1": sum(model[f"{m}_memory"].bram36 for m in MEMORIES),
                   "RAMB18E1": sum(model[f"{m}_memory"].bram18 for m in MEMORIES)}
    tiles = sum(model_brams.values())  # one block RAM per tile, by construction (param_memory.py)
    out = Path(args.out)
    results = (yaml.safe_load(out.read_text()) or {}) if out.exists() else {}
    failed = False
    for target in args.target:
        print(f"{name} {target}: synthesizing with images ...", flush=True)
        started = time.perf_counter()
        try:
            mapped = synthesize_with_images(folder, verilog_sources(folder), TOP, target, image_folders(plan))
        except BebertError as exc:
            print(f"{name} {target}: {exc} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
            return 1
        entry = {"artifact": str(args.artifact), "pe": args.pe, "simd": args.simd, "act_bits": plan.config.act_bits,
                 "members_resident": plan.resident, "memory_tiles": tiles, "tiles_checked": mapped.tiles,
                 "block_rams": mapped.block_rams, "luts": mapped.luts, "flip_flops": mapped.flip_flops,
                 "wall_s": round(mapped.seconds, 1), "yosys": yosys_version()}
        if target == "xilinx":
            entry["block_rams_model"] = model_brams
            failed |= mapped.block_rams != model_brams
        failed |= mapped.tiles != tiles
        results[f"{name}-{target}"] = entry
        print(f"{name} {target}: {mapped.tiles} of {tiles} tiles hold their images; block RAM {mapped.block_rams}"
              + (f" (model {model_brams})" if target == "xilinx" else "")
              + f"; {mapped.luts:,} LUTs, {mapped.flip_flops:,} FFs; {mapped.seconds:.0f} s", flush=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(yaml.safe_dump(results, sort_keys=False))
        tmp.replace(out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
