"""The row gearbox alone in Amaranth's simulator, then in Verilator and Icarus (cocotb): rows of random
values out exactly as they went in, at every ratio of widths both ways and with a partial last beat,
padding lanes 0, with stalls on both streams; the cycle count equal to the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog

from bebert.hw.blocks.row_gearbox import GearboxShape, RowGearbox
from bebert.hw.flows.cosim import SIMULATORS, build, run
from bebert.hw.testbench.amaranth_streams import stream_rows
from bebert.hw.testbench.row_blocks import beats, random_rows
from cocotb_tools.check_results import get_results

# (values, bits, signed, in width, out width)
SHAPES = [(384, 31, True, 64, 8), (384, 4, False, 64, 32), (32, 4, True, 8, 32), (20, 9, True, 4, 8),
          (7, 5, False, 7, 1), (12, 3, True, 1, 4), (10, 6, True, 8, 2), (5, 4, False, 2, 8)]


def as_signed(values: list[int], shape: GearboxShape) -> list[int]:
    if not shape.signed:
        return values
    return [v - (1 << shape.bits) if v >= 1 << (shape.bits - 1) else v for v in values]


@pytest.mark.parametrize("values,bits,is_signed,in_width,out_width", SHAPES)
@pytest.mark.parametrize("stalls", [False, True])
def test_rows_pass_unchanged_at_the_models_cycles(values, bits, is_signed, in_width, out_width, stalls):
    shape = GearboxShape(values, bits, is_signed, in_width, out_width)
    rng = np.random.default_rng(values * 7 + in_width)
    rows = random_rows(3, values, bits, is_signed, rng)
    stall = np.random.default_rng(5) if stalls else None
    out, cycles = stream_rows(RowGearbox(shape), beats(rows, in_width), budget=4000, stall=stall,
                              beats_out=3 * shape.out_beats)
    assert [as_signed(beat, shape) for beat in out] == beats(rows, out_width)
    if not stalls:
        assert cycles == shape.rows_cycles(3)
        assert stream_rows(RowGearbox(shape), beats(rows[:1], in_width), budget=400,
                           beats_out=shape.out_beats)[1] == shape.rows_cycles(1)


def test_widths_that_do_not_divide_are_refused():
    with pytest.raises(ValueError, match="one beat width to divide the other, not 48 into 32"):
        GearboxShape(384, 4, True, 48, 32)


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("values,bits,is_signed,in_width,out_width", [(10, 6, True, 8, 2)])
def test_row_gearbox_in_verilog(tmp_path: Path, simulator, values, bits, is_signed, in_width, out_width):
    shape = GearboxShape(values, bits, is_signed, in_width, out_width)
    source = tmp_path / "gearbox.v"
    source.write_text(verilog.convert(RowGearbox(shape), name="gearbox", emit_src=False))
    runner = build([source], "gearbox", tmp_path / "build", simulator=simulator)
    results = run(runner, "bebert.hw.testbench.row_blocks", "gearbox", tmp_path,
                  {"values": values, "bits": bits, "signed": is_signed, "in_width": in_width, "out_width": out_width,
                   "seed": values}, testcase="gearbox_rows_pass_unchanged")
    tests, failures = get_results(Path(results))
    assert tests == 1 and failures == 0, f"see {tmp_path}"
