"""The accelerator in Verilator and in Icarus Verilog (cocotb, four-state checked under Icarus) against
the simulator: whole tiny ensembles of both settings, 2 and 4 members time-multiplexed (resident or
streamed in), random backpressure on every stream, a reset in the middle of a sentence; and, marked
slow, 16 SST-2 dev sentences through the whole built-in model. Each run also checks the cycle counter
against the cycle model (in the testbench). Without iverilog installed, the Icarus runs fail with one
sentence saying what to install."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bebert.builtin import BUILTIN_DIR
from bebert.hw.design.config import HardwareConfig
from bebert.hw.flows.cosim import SIMULATORS, cosimulate
from bebert.sim.tokens import SentenceTokenizer
from conftest import make_tiny_ensemble

SENTENCES = ["a gorgeous, witty, seductive movie.", "the plot is nothing but boilerplate clichés",
             "it 's a charming and often affecting journey ."]


def cosimulate_text(tmp: Path, artifact: Path, config: HardwareConfig, sentences: list[str], **kwargs) -> dict:
    recipe = yaml.safe_load((Path(artifact) / "manifest.yaml").read_text())["recipe"]
    tokenizer = SentenceTokenizer(recipe["backbone"], recipe.get("max_length", 128))
    return cosimulate(artifact, config, [tokenizer.encode(s) for s in sentences], tmp / "cosim", **kwargs)


def assert_exact(results: dict, sentences: int) -> None:
    """Every sentence's class equals the simulator's and its cycle counter the cycle model; prints the
    cycle table (``pytest -s`` shows it)."""
    assert len(results["sentences"]) == sentences
    c = results["config"]
    for record in results["sentences"]:
        print(f"\ncycles | PE {c['pe']} | SIMD {c['simd']} | {c['act_bits']}-bit | {results['resident']} resident | "
              f"{record['tokens']} tokens | model {record['model_cycles']} | RTL {record['cycles']} | "
              f"stalls {record['stalls']}", end="")
        assert record["answer"] == record["simulator_answer"]
        assert record["cycles"] == record["model_cycles"]


@pytest.fixture(scope="module")
def tiny_14_two(tiny_backbone, tmp_path_factory):
    return make_tiny_ensemble(tiny_backbone, "w1e1a4", 2, tmp_path_factory.mktemp("a4x2") / "artifact")


@pytest.fixture(scope="module")
def tiny_11_four(tiny_backbone, tmp_path_factory):
    return make_tiny_ensemble(tiny_backbone, "w1e1a1", 4, tmp_path_factory.mktemp("a1x4") / "artifact", combine="vote")


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_two_member_1_1_4_ensemble_matches_simulator(tmp_path, tiny_14_two, simulator):
    """Every layer's results, both members' logits and the class, bit for bit; cycles equal the model.
    The parameters come from the memory images, as in `make demo`."""
    assert_exact(cosimulate_text(tmp_path, tiny_14_two, HardwareConfig(8, 16, None, 4), SENTENCES,
                                 testcase="sentences_match_simulator", simulator=simulator), len(SENTENCES))


# The matrix-product accelerator is now the secondary build (gen --products-only): Icarus runs its
# image-initialized ensemble in the fast suite, the streamed and stalled ones with the slow tests.
VERILATOR_FAST = [pytest.param("verilator"), pytest.param("icarus", marks=pytest.mark.slow)]


@pytest.mark.parametrize("simulator", VERILATOR_FAST)
def test_four_member_1_1_1_ensemble_streamed_in(tmp_path, tiny_11_four, simulator):
    """Four BiT members joined by vote on 6 lanes x 24 bits, two resident: parameters stream in."""
    assert_exact(cosimulate_text(tmp_path, tiny_11_four, HardwareConfig(6, 24, 2, 1), SENTENCES[:2],
                                 testcase="sentences_match_simulator", simulator=simulator), 2)


@pytest.mark.parametrize("simulator", VERILATOR_FAST)
def test_backpressure_and_reset(tmp_path, tiny_14_two, simulator):
    """Random stalls on all three streams (30% of cycles on each side), parameters reloaded through the
    load stream, then a reset in the middle of a sentence."""
    results = cosimulate_text(tmp_path, tiny_14_two, HardwareConfig(5, 12, None, 4), SENTENCES[:2], testcase=None,
                              gap=0.3, reload=True, simulator=simulator)
    assert_exact(results, 3)  # two sentences, then the one after the reset
    assert all(r["stalls"] > 0 for r in results["sentences"])  # the stalls really happened


@pytest.mark.slow
def test_post_synthesis_netlist_matches_simulator(tmp_path, tiny_14_two):
    """Yosys' generic netlist of the 2-member 1-1-4 accelerator, synthesized with its memory images,
    in Verilator: every result, the class and the cycle counter as the simulator and the model say."""
    results = cosimulate_text(tmp_path, tiny_14_two, HardwareConfig(8, 16, None, 4), SENTENCES[:1],
                              testcase="sentences_match_simulator", synthesized="generic")
    assert_exact(results, 1)
    netlist = (tmp_path / "cosim" / "netlist_generic.v").read_text()
    assert "module bebert_accelerator(" in netlist and "$readmemh" not in netlist  # the images are inside


@pytest.mark.slow
def test_builtin_model_end_to_end(tmp_path, glue_dir):
    """The first 16 SST-2 dev sentences through the whole built-in model on the default PE 64 x SIMD 64:
    every streamed result, both members' logits and the class equal the simulator's; prints the
    wall time and Verilator's simulated cycles per second."""
    from bebert.glue import load_split

    sentences = [example.text_a for example in load_split("sst2", "dev", glue_dir)[:16]]
    results = cosimulate_text(tmp_path, BUILTIN_DIR, HardwareConfig(64, 64, None, 4), sentences,
                              testcase="sentences_match_simulator")
    assert_exact(results, 16)
    cycles = sum(r["cycles"] + r["stalls"] for r in results["sentences"])
    wall = sum(r["wall_s"] for r in results["sentences"])
    print(f"\n16 SST-2 dev sentences: {cycles:,} simulated cycles in {wall:.1f} s of co-simulation "
          f"({cycles / wall:,.0f} cycles/s)")
