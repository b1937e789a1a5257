"""The encoder on chip behind AXI (hw/axi_system.py, `gen --interface axi`) in Verilator and Icarus,
driven by cocotbext-axi (hw/testbench/axi_system.py): a tiny two-member 1-1-4 ensemble's classes
equal the simulator's over AXI4-Stream, the cycle counter read over AXI4-Lite equals the model,
random pauses on every stream, the register file's protocol (read-only writes, unmapped addresses,
START while busy or with LENGTH 0, TLAST in the wrong place); with streamed layers too."""

from __future__ import annotations

import pytest

from bebert.hw.design.config import HardwareConfig
from bebert.hw.flows.cosim import SIMULATORS, cosimulate_encoder
from conftest import make_tiny_ensemble
from test_hw_encoder_accelerator import SENTENCES, encode


@pytest.fixture(scope="module")
def tiny_14_two(tiny_backbone, tmp_path_factory):
    return make_tiny_ensemble(tiny_backbone, "w1e1a4", 2, tmp_path_factory.mktemp("axi") / "artifact")


# Verilator runs every test of the testbench; Icarus (four-state) the sentences and the register protocol.
TESTS = {"verilator": None, "icarus": ["sentences_over_axi", "register_protocol"]}


@pytest.mark.parametrize("simulator, param_width", [("verilator", None), ("icarus", None), ("verilator", 32)])
def test_encoder_over_axi_matches_simulator(tmp_path, tiny_14_two, simulator, param_width):
    """Resident members in both simulators; and the layers streamed through a 32-bit AXI4-Stream slave
    (its units queued before START, TLAST at each unit's end, paused with the other streams)."""
    results = cosimulate_encoder(tiny_14_two, HardwareConfig(8, 16, None, 4, param_width),
                                 encode(tiny_14_two, SENTENCES), tmp_path / "cosim", tokens=16, attention_lanes=2,
                                 hidden_lanes=4, testcase=TESTS[simulator], simulator=simulator, interface="axi")
    records = results["sentences"]
    # sentences_over_axi: both sentences; the pauses: both again; the protocol: one; TLAST: one twice
    assert len(records) == (2 * len(SENTENCES) + 3 if simulator == "verilator" else len(SENTENCES) + 1)
    for record in records:
        print(f"\nAXI cycles | {record['tokens']} tokens | pauses {record['gap']:.0%} | model "
              f"{record['model_cycles']} | RTL {record['cycles']} | stalls {record['stalls']}")
        assert record["answer"] == record["simulator_answer"]
        if record["gap"]:
            assert record["cycles"] > record["model_cycles"] and record["stalls"] > 0
        else:
            assert record["cycles"] == record["model_cycles"]
