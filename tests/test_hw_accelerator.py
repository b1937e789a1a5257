"""The accelerator in Verilator (cocotb) against the simulator: whole tiny ensembles of both settings,
2 and 4 members time-multiplexed (resident or streamed in), random backpressure on every stream,
a reset in the middle of a sentence; and, marked slow, 16 SST-2 dev sentences through the whole
built-in model. Each run also checks the cycle counter against the cycle model (in the testbench)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bebert.builtin import BUILTIN_DIR
from bebert.hw.config import HardwareConfig
from bebert.hw.cosim import build, run
from bebert.hw.gen import TOP, VERILOG_FILE, generate_for_artifact
from bebert.sim.tokens import SentenceTokenizer
from cocotb_tools.check_results import get_results
from conftest import make_tiny_ensemble

TESTBENCHES = Path(__file__).parent / "cocotb"
SENTENCES = ["a gorgeous, witty, seductive movie.", "the plot is nothing but boilerplate clichés",
             "it 's a charming and often affecting journey ."]


def cosimulate(tmp: Path, artifact: Path, config: HardwareConfig, sentences: list[str], testcase: str | None = None,
               gap: float = 0.0, reload: bool = False) -> dict:
    """Generate, build and run the accelerator testbench; returns the testbench's results file."""
    generate_for_artifact(artifact, config, tmp / "gen")
    recipe = yaml.safe_load((Path(artifact) / "manifest.yaml").read_text())["recipe"]
    tokenizer = SentenceTokenizer(recipe["backbone"], recipe.get("max_length", 128))
    encoded = [list(tokenizer.encode(s)) for s in sentences]
    runner = build([tmp / "gen" / VERILOG_FILE], TOP, tmp / "build")
    results = tmp / "gen" / "results.json"
    settings = {"artifact": str(artifact), "pe": config.pe, "simd": config.simd, "members": config.members,
                "act_bits": config.act_bits, "sentences": encoded, "gap": gap, "reload": reload,
                "results": str(results)}
    xml = run(runner, "tb_accelerator", TOP, tmp / "gen", settings, testcase=testcase, module_dir=TESTBENCHES)
    tests, failures = get_results(Path(xml))
    assert tests >= 1 and failures == 0, f"see {tmp / 'gen' / 'tb_accelerator.log'}"
    return json.loads(results.read_text())


def assert_exact(results: dict, sentences: int) -> None:
    assert len(results["sentences"]) == sentences
    for record in results["sentences"]:
        assert record["answer"] == record["simulator_answer"]
        assert record["cycles"] == record["model_cycles"]


@pytest.fixture(scope="module")
def tiny_14_two(tiny_backbone, tmp_path_factory):
    return make_tiny_ensemble(tiny_backbone, "w1e1a4", 2, tmp_path_factory.mktemp("a4x2") / "artifact")


@pytest.fixture(scope="module")
def tiny_11_four(tiny_backbone, tmp_path_factory):
    return make_tiny_ensemble(tiny_backbone, "w1e1a1", 4, tmp_path_factory.mktemp("a1x4") / "artifact", combine="vote")


def test_two_member_1_1_4_ensemble_matches_simulator(tmp_path, tiny_14_two):
    """Every layer's results, both members' logits and the class, bit for bit; cycles equal the model."""
    assert_exact(cosimulate(tmp_path, tiny_14_two, HardwareConfig(8, 16, None, 4), SENTENCES,
                            testcase="sentences_match_simulator"), len(SENTENCES))


def test_four_member_1_1_1_ensemble_streamed_in(tmp_path, tiny_11_four):
    """Four BiT members joined by vote on 6 lanes x 24 bits, two resident: parameters stream in."""
    assert_exact(cosimulate(tmp_path, tiny_11_four, HardwareConfig(6, 24, 2, 1), SENTENCES[:2],
                            testcase="sentences_match_simulator"), 2)


def test_backpressure_and_reset(tmp_path, tiny_14_two):
    """Random stalls on all three streams (30% of cycles on each side), parameters reloaded through the
    load stream, then a reset in the middle of a sentence."""
    results = cosimulate(tmp_path, tiny_14_two, HardwareConfig(5, 12, None, 4), SENTENCES[:2], gap=0.3, reload=True)
    assert any(r["stalls"] > 0 for r in results["sentences"])  # the stalls really happened
