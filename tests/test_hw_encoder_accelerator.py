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


def assert_exact(results: dict, sentences: int, stalls_cost: bool = True) -> None:
    """Every answer the simulator's; every cycle count the model's, or more where the host stalled
    (``stalls_cost`` False: or equal, where a slower parameter stream hides the host's stalls)."""
    assert len(results["sentences"]) == sentences
    for record in results["sentences"]:
        print(f"\nencoder cycles | {record['tokens']} tokens | stalls {record['gap']:.0%} | beat interval "
              f"{record.get('beat_interval', 1)} | model {record['model_cycles']} | RTL {record['cycles']}")
        assert record["answer"] == record["simulator_answer"]
        if record["gap"] and stalls_cost:
            assert record["cycles"] > record["model_cycles"]
        elif record["gap"]:
            assert record["cycles"] >= record["model_cycles"]
        else:
            assert record["cycles"] == record["model_cycles"]


# The testbench's tests, one build for all: the sentences exact (cycles equal to the model's), the
# same sentences with random stalls on the host's streams, a reset halfway through a sentence and an
# embedding stream that ends a row early, each followed by the sentence again. Icarus, about 10k
# times slower than Verilator on this design, runs the first and the reset (its X checks).
EVERY_TEST = None
RECORDS = 2 * len(SENTENCES) + 2
FOUR_STATE_TESTS = ["sentences_match_simulator", "reset_in_the_middle"]


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_two_member_1_1_4_encoder_matches_simulator(tmp_path, tiny_14_two, simulator):
    tests, records = (EVERY_TEST, RECORDS) if simulator == "verilator" else (FOUR_STATE_TESTS, len(SENTENCES) + 1)
    assert_exact(cosimulate_encoder(tiny_14_two, HardwareConfig(8, 16, None, 4), encode(tiny_14_two, SENTENCES),
                                    tmp_path / "cosim", tokens=16, attention_lanes=2, hidden_lanes=4,
                                    testcase=tests, simulator=simulator), records)


@pytest.mark.parametrize("simulator", [pytest.param("verilator"), pytest.param("icarus", marks=pytest.mark.slow)])
def test_three_member_1_1_1_encoder_matches_simulator(tmp_path, tiny_11_three, simulator):
    """BiT's bipolar codes, XNOR attention scores and {0, 1} probabilities; a vote; PE wider than a head."""
    assert_exact(cosimulate_encoder(tiny_11_three, HardwareConfig(16, 8, None, 1), encode(tiny_11_three, SENTENCES),
                                    tmp_path / "cosim", tokens=12, attention_lanes=4, hidden_lanes=8,
                                    testcase=EVERY_TEST, simulator=simulator), RECORDS)


@pytest.mark.slow
def test_builtin_model_end_to_end(tmp_path, glue_dir):
    """The built-in model on the encoder on chip at PE 64 x SIMD 64, built for 64 tokens: the first 15
    SST-2 dev sentences and the longest one the build allows; every member's LayerNorm outputs (as
    the codes they write), context codes, logits and class equal the simulator's, cycles the model's."""
    from bebert.builtin import BUILTIN_DIR
    from bebert.glue import load_split

    examples = load_split("sst2", "dev", glue_dir)
    encoded = encode(BUILTIN_DIR, [e.text_a for e in examples])
    longest = max((ids for ids in encoded if len(ids[0]) <= 64), key=lambda ids: len(ids[0]))
    sentences = encoded[:15] + [longest]
    results = cosimulate_encoder(BUILTIN_DIR, HardwareConfig(64, 64, None, 4), sentences, tmp_path / "cosim",
                                 tokens=64, attention_lanes=4, hidden_lanes=8)
    assert_exact(results, 16)
    cycles = sum(r["cycles"] for r in results["sentences"])
    wall = sum(r["wall_s"] for r in results["sentences"])
    print(f"\n16 SST-2 dev sentences (longest {len(longest[0])} tokens): {cycles:,} cycles in {wall:.1f} s "
          f"({cycles / wall:,.0f} cycles/s)")



# Streamed parameters: the two members' four layers pass through two layer slots (never all on chip),
# a 32-bit stream filling the wide words a chunk at a time; the parameter source offers a beat every
# cycle, every third, and every eighth (the stream rates the cycle model is checked at).
BEAT_INTERVALS = (1, 3, 8)


def test_streamed_layers_match_simulator_at_every_rate(tmp_path, tiny_14_two):
    sentences = encode(tiny_14_two, SENTENCES)
    config = HardwareConfig(8, 16, None, 4, param_width=32)
    cycles = []
    for interval in BEAT_INTERVALS:
        results = cosimulate_encoder(tiny_14_two, config, sentences, tmp_path / "cosim", tokens=16, attention_lanes=2,
                                     hidden_lanes=4,
                                     testcase=EVERY_TEST if interval == 3 else "sentences_match_simulator",
                                     beat_interval=interval)
        assert_exact(results, RECORDS if interval == 3 else len(SENTENCES), stalls_cost=False)
        cycles.append([r["cycles"] for r in results["sentences"][:len(SENTENCES)]])
    assert cycles[0] < cycles[1] < cycles[2], "a slower parameter stream must cost cycles"


def test_streamed_layers_in_icarus(tmp_path, tiny_14_two):
    """The four-state check of the loader and the chunked slots: no X read, exact at a beat every 2 cycles."""
    assert_exact(cosimulate_encoder(tiny_14_two, HardwareConfig(8, 16, None, 4, param_width=32),
                                    encode(tiny_14_two, SENTENCES[1:]), tmp_path / "cosim", tokens=16,
                                    attention_lanes=2, hidden_lanes=4, simulator="icarus", beat_interval=2), 1)
