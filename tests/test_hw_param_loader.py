"""The parameter loader (hw/blocks/param_loader.py) in Amaranth's simulator, and the streamed layout it
serves (plan.py's parameter units, generator/param_stream.py's beats): every beat written once as
the chunk of the word and slot the layout says; ``loaded`` and the stream's ``ready`` follow the
slots' use (two units at most, a release frees one, ``loaded`` false while the only unit is being
released); nothing is taken after the sentence's last unit; the latencies the cycle model uses."""

from __future__ import annotations

import pytest
from amaranth.sim import Simulator

from bebert.hw.blocks.param_loader import LOADED_LATENCY, RELEASE_TO_BEAT, LoaderShape, ParamLoader
from bebert.hw.design.config import ConfigError, HardwareConfig
from bebert.hw.design.plan import MEMORIES, AcceleratorPlan
from bebert.hw.flows.dse import model_shape

# a layer: 3 weight words of 2 chunks, 2 threshold words of 3; the last layer (with the head): 4 of 2,
# 1 of 3 and an affine word of 1
SHAPE = LoaderShape(width=8, members=2, layers=2, segments=(((0, 3, 2), (1, 2, 3)), ((0, 4, 2), (1, 1, 3), (2, 1, 1))),
                    memories=3)


def expected_writes(shape: LoaderShape) -> list[tuple[int, int, int, int]]:
    """(memory, word, slot, chunk) of every beat of a sentence, in order."""
    writes, unit = [], 0
    for _ in range(shape.members):
        for layer in range(shape.layers):
            for memory, words, chunks in shape.segments[layer == shape.layers - 1]:
                writes += [(memory, w, unit % 2, c) for w in range(words) for c in range(chunks)]
            unit += 1
    return writes


def run_loader(releases: dict[int, int], cycles: int) -> dict:
    """Offer beats 1, 2, 3, ... every cycle from a start; pulse ``release`` at the cycles named in
    ``releases`` (cycle -> 1). Returns per cycle: ready, loaded, and the writes seen (with data)."""
    dut = ParamLoader(SHAPE)
    seen = {"ready": [], "loaded": [], "writes": []}

    async def bench(ctx):
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        beat = 1
        for cycle in range(cycles):
            ctx.set(dut.stream.valid, 1)
            ctx.set(dut.stream.payload, beat & 0xFF)
            ctx.set(dut.release, releases.get(cycle, 0))
            seen["ready"].append(ctx.get(dut.stream.ready))
            seen["loaded"].append(ctx.get(dut.loaded))
            w = dut.write
            if ctx.get(w.valid):
                seen["writes"].append((cycle, ctx.get(w.memory), ctx.get(w.word), ctx.get(w.slot), ctx.get(w.chunk),
                                       ctx.get(w.data)))
            taken = ctx.get(dut.stream.ready)
            await ctx.tick()
            beat += taken

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return seen


def test_loader_fills_two_slots_and_waits_for_a_release():
    layer = SHAPE.unit_beats(False)  # 12 beats
    # with no release: two units (24 beats) taken back to back from cycle 0, then nothing
    seen = run_loader({}, 40)
    assert seen["ready"][:2 * layer] == [1] * (2 * layer) and not any(seen["ready"][2 * layer:])
    want = expected_writes(SHAPE)[:2 * layer]
    assert [w[1:5] for w in seen["writes"]] == want
    assert [w[5] for w in seen["writes"]] == list(range(1, 2 * layer + 1)), "each beat written once, in order"
    assert [w[0] for w in seen["writes"]] == list(range(1, 2 * layer + 1)), "a beat is written the cycle after it is taken"
    # loaded rises LOADED_LATENCY after the first unit's last beat (taken at cycle layer - 1)
    assert seen["loaded"].index(1) == layer - 1 + LOADED_LATENCY


def test_release_frees_a_slot_and_hides_the_unit_being_released():
    layer = SHAPE.unit_beats(False)
    release = 30  # both slots full since cycle 24
    seen = run_loader({release: 1}, 45)
    assert seen["ready"][release] == 0 and seen["ready"][release + RELEASE_TO_BEAT] == 1
    assert seen["loaded"][release] == 1, "the second unit stays loaded while the first is released"
    # the third unit (member 1's layer 0) goes into slot 0 again
    third = [w for w in seen["writes"] if w[0] > 2 * layer]
    assert third and all(w[3] == 0 for w in third) and third[0][0] == release + RELEASE_TO_BEAT + 1
    # with only one unit filled (the second still loading), it is not ``loaded`` in the cycle its
    # release is seen, so the controller cannot take the next unit's step on its strength
    seen = run_loader({layer + 1: 1}, layer + 4)
    assert seen["loaded"][layer] == 1 and seen["loaded"][layer + 1] == 0 and seen["loaded"][layer + 2] == 0


def test_loader_takes_nothing_after_the_sentence():
    writes = expected_writes(SHAPE)
    units = SHAPE.members * SHAPE.layers
    releases = {100 * (u + 1): 1 for u in range(units)}
    seen = run_loader(releases, 100 * (units + 1) + 20)
    assert [w[1:5] for w in seen["writes"]] == writes, "every beat of the sentence, in the layout's order"
    assert not any(seen["ready"][100 * units + 2:]), "beats offered after the last unit are refused"


def test_streamed_plan_layout_matches_the_resident_images():
    """BERT-base's units: each layer alone, the head with the last layer; slots as deep as the
    largest unit; a unit's words are the resident member's, from the unit's start (threshold words
    counted in words of a full fold: each plan folds them as its memory is cheapest)."""
    shape = model_shape("bert-base:1-1-4:2")
    streamed = AcceleratorPlan(HardwareConfig(64, 64, None, 4, 256), shape)
    resident = AcceleratorPlan(HardwareConfig(64, 64, None, 4), shape)
    names = [u.name for u in streamed.param_units]
    assert names == [f"layer{i}" for i in range(11)] + ["layer11+head"]
    assert sum(len(u.jobs) for u in streamed.param_units) == len(resident.jobs)
    for name in MEMORIES:
        fold = {"thresholds": (streamed.threshold_fold, resident.threshold_fold)}.get(name, (1, 1))
        depth = streamed.slot_depth[name]
        assert depth == max(w[name] for w in streamed.unit_words.values())
        assert streamed.memory_shapes[name][0] == 2 * depth
        assert (sum(w[name] for w in streamed.unit_words.values()) // fold[0]
                == resident.memory_shapes[name][0] // fold[1])
    for plan in (streamed, resident):  # a threshold word's parts, each as wide as the memory
        assert plan.threshold_word_width * plan.threshold_fold >= plan.threshold_width
        assert plan.memory_shapes["thresholds"][1] == plan.threshold_word_width
    for unit in streamed.param_units:  # a unit's jobs sit where the resident layout has them, shifted
        first = unit.jobs[0].name
        for job in unit.jobs:
            assert streamed.weight_base[job.name] == resident.weight_base[job.name] - resident.weight_base[first]
    assert streamed.unit_beats("layer0") == sum(
        words * -(-streamed.memory_shapes[n][1] // 256) for n, words in streamed.unit_words["layer0"].items())


def test_param_stream_beats_rebuild_the_member_images(builtin_plan_streamed):
    """The beats of a sentence, cut back into words, are the resident images of each member."""
    from bebert.hw.generator.images import member_images
    from bebert.hw.generator.param_stream import sentence_beats

    streamed, resident = builtin_plan_streamed
    width = streamed.config.param_width
    beats = iter(sentence_beats(streamed))
    for member in range(streamed.ensemble_members):
        got = {name: [] for name in MEMORIES}
        for unit in streamed.param_units:
            for name in MEMORIES:
                chunks = -(-streamed.memory_shapes[name][1] // width)
                for _ in range(streamed.unit_words[unit.name][name]):
                    got[name].append(sum(next(beats) << (c * width) for c in range(chunks)))
        images = member_images(resident, member)
        for name in MEMORIES:
            assert got[name] == images.words(name), f"member {member} {name}"
    assert next(beats, None) is None


@pytest.fixture(scope="module")
def builtin_plan_streamed():
    from bebert.builtin import BUILTIN_DIR
    from bebert.hw.design.plan import plan_for
    from bebert.sim.ensemble import load_simulation

    simulation = load_simulation(BUILTIN_DIR)
    return (plan_for(simulation, HardwareConfig(64, 64, None, 4, 512)),
            plan_for(simulation, HardwareConfig(64, 64, None, 4)))


@pytest.mark.parametrize("width, members, message", [
    (100, None, "--param-width must be a power of two from 32 to 1024 bits, not 100."),
    (2048, None, "--param-width must be a power of two from 32 to 1024 bits, not 2048."),
    (128, 1, "--members (resident members) and --param-width (streamed layers) exclude each other; choose one."),
])
def test_bad_parameter_stream_widths_are_refused(width, members, message):
    with pytest.raises(ConfigError) as failure:
        HardwareConfig(64, 64, members, 4, width)
    assert str(failure.value) == message


def test_the_model_charges_a_slower_stream():
    """The cycle model: a unit's steps wait for its load, so a slower stream costs cycles, and a
    stream fast enough to hide every load but the first costs about that first load."""
    from bebert.hw.encoder_units import encoder_units, nominal_constants
    from bebert.hw.schedule import inference_cycles

    shape = model_shape("minilm:1-1-4:2")
    resident = AcceleratorPlan(HardwareConfig(64, 64, None, 4), shape)
    streamed = AcceleratorPlan(HardwareConfig(64, 64, None, 4, 1024), shape)

    def cycles(plan, interval=1):
        units = encoder_units(plan, 32, 4, 8, nominal_constants(plan, 12))
        return inference_cycles(plan, units, 32, beat_interval=interval)

    base, fast, slow = cycles(resident).total, cycles(streamed), cycles(streamed, 4)
    first = streamed.unit_beats("layer0")
    assert fast.pe_waits["parameters"] >= first and fast.total <= base + first + 100
    assert slow.total > fast.total and slow.pe_waits["parameters"] >= 4 * (first - 1)  # the first load, 4x slower
