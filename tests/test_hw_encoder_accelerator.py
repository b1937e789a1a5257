"""The encoder on chip (hw/encoder_accelerator.py) in Verilator and Icarus Verilog (cocotb) against the
simulator: a tiny two-member 1-1-4 ensemble, the host streaming only the embedding rows; every row
of codes the chip's LayerNorms write, every context row, both members' logits and the class equal
the simulator's trace (hw/testbench/encoder.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bebert.hw.design.config import HardwareConfig
from bebert.hw.flows.cosim import SIMULATORS, cosimulate_encoder
from bebert.sim.tokens import SentenceTokenizer
from conftest import make_tiny_ensemble

SENTENCES = ["a gorgeous, witty, seductive movie.", "dull"]


def encode(artifact: Path, sentences: list[str]) -> list:
    recipe = yaml.safe_load((Path(artifact) / "manifest.yaml").read_text())["recipe"]
    tokenizer = SentenceTokenizer(recipe["backbone"], recipe.get("max_length", 128))
    return [tokenizer.encode(s) for s in sentences]


@pytest.fixture(scope="module")
def tiny_14_two(tiny_backbone, tmp_path_factory):
    return make_tiny_ensemble(tiny_backbone, "w1e1a4", 2, tmp_path_factory.mktemp("a4x2") / "artifact")


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_two_member_1_1_4_encoder_matches_simulator(tmp_path, tiny_14_two, simulator):
    results = cosimulate_encoder(tiny_14_two, HardwareConfig(8, 16, None, 4), encode(tiny_14_two, SENTENCES),
                                 tmp_path / "cosim", tokens=16, attention_lanes=2, hidden_lanes=4,
                                 simulator=simulator)
    assert len(results["sentences"]) == len(SENTENCES)
    for record in results["sentences"]:
        print(f"\nencoder cycles | {record['tokens']} tokens | model {record['model_cycles']} | RTL {record['cycles']}")
        assert record["answer"] == record["simulator_answer"]
