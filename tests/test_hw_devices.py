"""Target devices (hw/design/devices.py): the ECP5 conversion against the routed designs of
results/timing.yaml, fit and bound of real design points, and `bebert-hw dse --device`."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bebert.hw.accelerator import accelerator_resources
from bebert.hw.design.config import HardwareConfig
from bebert.hw.design.devices import DEVICES, ECP5_FF_PER_FF, ECP5_LUT4_PER_LUT, assess, device, usage
from bebert.hw.design.dims import shape_from_dims
from bebert.hw.design.plan import AcceleratorPlan
from bebert.hw.flows.dse import DesignPoint, run_points
from bebert.hw.resources import Resources, total

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from timing_check import CONFIGS, TIMING_DIMS  # noqa: E402  (the routed designs' definitions)


def routed_designs():
    """(model resources, routed counts without the pin wrapper) of every routed design."""
    runs = yaml.safe_load((REPO / "results" / "timing.yaml").read_text())["configurations"]
    for run in (r for r in runs if r.get("fmax_mhz")):
        setting, pe, simd, bits = CONFIGS[run["name"]]
        plan = AcceleratorPlan(HardwareConfig(pe, simd, None, bits), shape_from_dims("timing", TIMING_DIMS, setting, 1))
        yield run["name"], total(accelerator_resources(plan)), {
            "lut": run["luts"] - run["wrapper_luts"], "ff": run["ffs"] - run["wrapper_ffs"], "bram": run["ebr"],
            "dsp": run["dsp"]}


def test_ecp5_conversion_matches_the_routed_designs(monkeypatch):
    """Block RAM and multipliers exact; the LUT4 and flip-flop factors never below what was routed, and
    each equal to the larger measured ratio (so they follow the data, not a guess). The designs were
    routed before threshold words were read in parts (word_assembler.py), so they are modelled as they
    were routed, a whole threshold word a memory word (fold 1), until they are routed again."""
    monkeypatch.setattr(AcceleratorPlan, "threshold_fold", property(lambda plan: 1))
    ratios = {"lut": [], "ff": []}
    designs = list(routed_designs())
    assert len(designs) == 2
    for name, model, routed in designs:
        used = usage(DEVICES["ecp5-85f"], model)
        assert (used["bram"], used["dsp"]) == (routed["bram"], routed["dsp"]), name
        assert used["lut"] >= routed["lut"] and used["ff"] >= routed["ff"], name
        ratios["lut"].append(routed["lut"] / (model.lut + model.lutram + model.carry))
        ratios["ff"].append(routed["ff"] / model.ff)
    assert ECP5_LUT4_PER_LUT == pytest.approx(max(ratios["lut"]), abs=0.005)
    assert ECP5_FF_PER_FF == pytest.approx(max(ratios["ff"]), abs=0.005)


def test_xilinx_usage_counts_lut_memory_and_half_tiles():
    used = usage(DEVICES["zu9eg"], Resources(lut=100, lutram=20, ff=7, bram36=3, bram18=5, dsp=2, carry=9))
    assert used == {"lut": 120, "ff": 7, "bram": 5.5, "dsp": 2}


def test_assess_names_what_stops_or_bounds_a_design():
    zu9eg = DEVICES["zu9eg"]
    big = Resources(lut=1000, ff=1000, bram36=913)  # one RAMB36 more than the part has
    verdict = assess(zu9eg, big, cycles=1000, clock_mhz=200, traffic_bits=0)
    assert (verdict.fits, verdict.bound, verdict.sentences_per_s) == (False, "bram", 0.0)
    small = Resources(lut=1000, ff=1000, bram36=10)
    assert assess(zu9eg, small, 1000, 200, 1000).bound == "compute"
    # 200k sentences/s at 200 MHz; 1 Mbit each is 25 GB/s, more than the 19.2 GB/s of DDR4
    starved = assess(zu9eg, small, 1000, 200, 1_000_000)
    assert starved.fits and starved.bound == "bandwidth"
    assert starved.sentences_per_s == pytest.approx(19.2e9 * 8 / 1_000_000)
    assert assess(zu9eg, small, 1000, 200, None).bandwidth_share is None  # traffic not modelled


def test_real_points_fit_or_are_stopped_by_block_ram():
    """The built-in design holds both members' 37 Mbit on chip: too much block RAM for a ZU9EG; one MiniLM
    member at PE 8 fits it; both co-simulated tiny designs fit the ECP5 at its measured clock (the 1-1-4
    one since its wide 4-bit threshold words are read in parts: 89 DP16KD of 208, 217 before)."""
    points = [DesignPoint("builtin", 64, 64, 2, 4, "multiplexed", True, 128, 4, 8),
              DesignPoint("minilm:1-1-4:1", 8, 32, 1, 4, "multiplexed", True, 128, 4, 8),
              DesignPoint("tiny:1-1-1:3", 16, 8, 3, 1, "multiplexed", True, 12, 4, 8),
              DesignPoint("tiny:1-1-4:2", 8, 16, 2, 4, "multiplexed", True, 16, 2, 4)]
    rows = run_points(points, 12, synthesize=False, clock=(29.69, "measured"), devices=list(DEVICES.values())).rows
    builtin, minilm, tiny, tiny_a4 = rows
    assert (tiny_a4["ecp5_85f_fits"], tiny_a4["ecp5_85f_bound"]) == (True, "compute")
    assert (builtin["zu9eg_fits"], builtin["zu9eg_bound"]) == (False, "bram")
    assert builtin["zu9eg_bram_share"] > 1 and builtin["ecp5_85f_bound"] == "bram"
    assert (minilm["zu9eg_fits"], minilm["zu9eg_bound"], minilm["zu9eg_clock_mhz"]) == (True, "compute", 200.0)
    assert minilm["zu9eg_sentences_per_s"] == pytest.approx(200e6 / minilm["cycles"], rel=1e-4)
    assert (tiny["ecp5_85f_fits"], tiny["ecp5_85f_clock_mhz"]) == (True, 29.69)
    # the embedding rows: 3 members x 12 tokens x 32 values (4 beats of 8 lanes) x the port's value width
    assert tiny["traffic_bits"] % (3 * 12 * 32) == 0 and tiny["traffic_bits"] >= 3 * 12 * 32 * 8


def test_dse_device_option_judges_only_that_device(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bebert.hw.cli", "dse", "--no-synth", "--models", "tiny:1-1-1:3",
                           "--pe", "16", "--simd", "8", "--mapping", "multiplexed", "--tokens", "12", "--max-tokens",
                           "12", "--attention-lanes", "4", "--hidden-lanes", "8", "--device", "ECP5-85F", "--accuracy", "", "--out", str(tmp_path / "d")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "ecp5-85f (ULX3S" in done.stdout and "1 of 1 point(s) fit" in done.stdout and "zu9eg" not in done.stdout
    with open(tmp_path / "d" / "dse.csv") as f:
        [row] = list(csv.DictReader(f))
    assert row["ecp5_85f_fits"] == "True" and "zu9eg_fits" not in row
    assert (tmp_path / "d" / "pareto_ecp5-85f.png").exists() and not (tmp_path / "d" / "pareto_zu9eg.png").exists()


def test_unknown_device_is_one_sentence():
    with pytest.raises(Exception, match="Unknown device 'vu9p'; the devices are zu9eg, ecp5-85f"):
        device("vu9p")


def test_streamed_layers_fit_where_resident_members_do_not():
    """The built-in model at PE 16 x SIMD 128: both members resident overflow the ZU9EG's block RAM;
    its layers streamed through a 512-bit stream fit, and its cycles on each device are its own: the
    DDR4's 19.2 GB/s keep up with a beat a cycle at 200 MHz (768 bits a cycle); the ULX3S' SDRAM
    (0.332 GB/s at 29.7 MHz: 89 bits a cycle) loads the first layer 5.7 times slower (the later
    loads hide behind a layer's compute either way)."""
    points = [DesignPoint("builtin", 16, 128, 2, 4, "multiplexed", True, 128, 4, 8),
              DesignPoint("builtin", 16, 128, 0, 4, "multiplexed", True, 128, 4, 8, param_width=512)]
    resident, streamed = run_points(points, 32, synthesize=False, clock=(29.69, "measured"),
                                    devices=list(DEVICES.values())).rows
    assert (resident["zu9eg_fits"], resident["zu9eg_bound"]) == (False, "bram")
    assert (streamed["zu9eg_fits"], streamed["zu9eg_bound"]) == (True, "compute")
    assert streamed["memory_bits"] < resident["memory_bits"] / 2
    assert streamed["zu9eg_cycles"] == streamed["cycles"], "the DDR4 feeds a beat a cycle"
    first_load = 512 / (0.332 * 8e9 / 29.69e6) * (streamed["param_stream_bits"] / 512 / 2 / 6)  # a layer's beats
    assert streamed["ecp5_85f_cycles"] - streamed["cycles"] == pytest.approx(first_load * (1 - 1 / 5.72), rel=0.05)
    assert streamed["param_stream_bits"] > 37e6  # both members' matrices (37 Mbit resident), every sentence
    assert streamed["zu9eg_sentences_per_s"] == pytest.approx(200e6 / streamed["zu9eg_cycles"], rel=1e-4)


def test_dse_refuses_a_bad_parameter_stream_width(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bebert.hw.cli", "dse", "--no-synth", "--param-width", "0,100",
                           "--out", str(tmp_path / "d")], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == ("bebert-hw: error: Sweep key 'param_width' holds 100; it takes 0 (resident) or a "
                                   "power of two from 32 to 1024.")
    assert not (tmp_path / "d").exists()
