"""The encoder on chip (hw/encoder_accelerator.py) in Verilator and Icarus Verilog (cocotb) against the
simulator: a tiny two-member 1-1-4 ensemble, the host streaming only the embedding rows; every row
of codes the chip's LayerNorms write, every context row, both members' logits and the class equal
the simulator's trace (hw/testbench/encoder.py); the cycle counter equals the schedule's model
(hw/schedule.py, ``inference_cycles``)."""

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


@pytest.fixture(scope="module")
def tiny_11_three(tiny_backbone, tmp_path_factory):
    return make_tiny_ensemble(tiny_backbone, "w1e1a1", 3, tmp_path_factory.mktemp("a1x3") / "artifact", combine="vote")


def assert_exact(results: dict, sentences: int) -> None:
    assert len(results["sentences"]) == sentences
    for record in results["sentences"]:
        print(f"\nencoder cycles | {record['tokens']} tokens | model {record['model_cycles']} | RTL {record['cycles']}")
        assert record["answer"] == record["simulator_answer"]
        assert record["cycles"] == record["model_cycles"]


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_two_member_1_1_4_encoder_matches_simulator(tmp_path, tiny_14_two, simulator):
    assert_exact(cosimulate_encoder(tiny_14_two, HardwareConfig(8, 16, None, 4), encode(tiny_14_two, SENTENCES),
                                    tmp_path / "cosim", tokens=16, attention_lanes=2, hidden_lanes=4,
                                    simulator=simulator), len(SENTENCES))


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_three_member_1_1_1_encoder_matches_simulator(tmp_path, tiny_11_three, simulator):
    """BiT's bipolar codes, XNOR attention scores and {0, 1} probabilities; a vote; PE wider than a head."""
    assert_exact(cosimulate_encoder(tiny_11_three, HardwareConfig(16, 8, None, 1), encode(tiny_11_three, SENTENCES),
                                    tmp_path / "cosim", tokens=12, attention_lanes=4, hidden_lanes=8,
                                    simulator=simulator), len(SENTENCES))
