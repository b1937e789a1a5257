"""Clock frequency by real place and route: the accelerator on a Lattice ECP5-85F (hw/flows/timing.py).

    python scripts/timing_check.py [--only NAME ...] [--target-mhz 100] [--out results/timing.yaml]

Each configuration's Verilog is generated, synthesized (Yosys synth_ecp5) and placed and routed
(nextpnr-ecp5, LFE5U-85F, speed grade 6); results/timing.yaml records fmax, utilisation, the
critical path, the tools and the SHA-256 of the Verilog, and a configuration whose Verilog is
unchanged is not run again. The DSE (`bebert-hw dse`) takes the slowest fmax here as its clock.

Which configurations: what fits an ECP5-85F (83,640 LUT4s, 208 DP16KD block RAMs of 18 kbit,
3.7 Mbit). The built-in model's parameters (37 Mbit) do not, and with 4-bit codes the threshold
memory's word alone is PE x 450 bits (15 levels x 2 x 15 bits per lane), at least PE x 450 / 36
DP16KDs side by side: PE 16 needs 200 of the 208 for thresholds. So the timed designs run a
one-layer model, 128 wide with a 256-wide FFN, whose parameters fit: the same blocks (PE array,
output unit, buffers, controller) at the same PE, SIMD and code widths as a full model; the
parameter memories are shallower and the buffers shorter (128 and 256 codes instead of MiniLM's
384 and 1,536), so the buffers' read muxes are shallower than in the built-in design.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import yaml

from bebert.hw.design.config import HardwareConfig
from bebert.hw.design.dims import shape_from_dims
from bebert.hw.generator.gen import LIBRARY, TOP, verilog
from bebert.hw.design.plan import AcceleratorPlan
from bebert.hw.flows.timing import DoesNotFit, place_and_route

REPO = Path(__file__).resolve().parents[1]
TIMING_DIMS = dict(num_layers=1, hidden_size=128, intermediate_size=256, num_heads=2, max_position=64,
                   num_labels=2)
CONFIGS = {  # name -> (setting, PE, SIMD, activation bits); PE 16 x SIMD 64 at 4 bits needs 228 of the 208 DP16KD
    "pe8-simd32-a4": ("1-1-4", 8, 32, 4),
    "pe16-simd64-a1": ("1-1-1", 16, 64, 1),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(CONFIGS), help="run only these configurations")
    parser.add_argument("--target-mhz", type=float, default=100.0)
    parser.add_argument("--work", default=str(REPO / "runs" / "timing"))
    parser.add_argument("--out", default=str(REPO / "results" / "timing.yaml"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    recorded = {r["name"]: r for r in (yaml.safe_load(out.read_text()) or {}).get("configurations", [])} \
        if out.exists() else {}
    for name in args.only or CONFIGS:
        setting, pe, simd, bits = CONFIGS[name]
        plan = AcceleratorPlan(HardwareConfig(pe, simd, None, bits), shape_from_dims("timing", TIMING_DIMS, setting, 1))
        text = verilog(plan)
        digest = hashlib.sha256((text + "".join(LIBRARY.values())).encode()).hexdigest()
        if recorded.get(name, {}).get("verilog_sha256") == digest:
            print(f"{name}: unchanged Verilog, recorded fmax {recorded[name].get('fmax_mhz')} MHz")
            continue
        work = Path(args.work) / name
        work.mkdir(parents=True, exist_ok=True)
        sources = [work / library for library in LIBRARY] + [work / f"{TOP}.v"]
        for source, source_text in zip(sources, [*LIBRARY.values(), text]):
            source.write_text(source_text)
        entry = {"name": name, "setting": setting, "pe": pe, "simd": simd, "act_bits": bits,
                 "model": f"1 layer, hidden {TIMING_DIMS['hidden_size']}, FFN {TIMING_DIMS['intermediate_size']}",
                 "verilog_sha256": digest, "target_mhz": args.target_mhz}
        started = time.perf_counter()
        try:
            result = place_and_route(sources, TOP, work, target_mhz=args.target_mhz)
        except DoesNotFit as exc:
            entry["does_not_fit"] = str(exc)
        except RuntimeError as exc:
            entry["failed"] = str(exc).splitlines()[0]
        else:
            entry.update(fmax_mhz=round(result.fmax_mhz, 2), luts=result.luts, ffs=result.ffs, ebr=result.ebr,
                         dsp=result.dsp, wrapper_ffs=result.wrapper_ffs, wrapper_luts=result.wrapper_luts,
                         critical_path=list(result.critical_path),
                         critical_path_blocks=list(result.critical_path_blocks),
                         synth_seconds=round(result.synth_seconds), pnr_seconds=round(result.pnr_seconds),
                         yosys=result.yosys_version, nextpnr=result.nextpnr_version)
        entry["seconds"] = round(time.perf_counter() - started)
        recorded[name] = entry
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(yaml.safe_dump({"device": "LFE5U-85F, speed grade 6 (nextpnr-ecp5)",
                                       "configurations": list(recorded.values())}, sort_keys=False))
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in entry.items() if k not in ("verilog_sha256",)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
