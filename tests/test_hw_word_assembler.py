"""The word assembler (hw/blocks/word_assembler.py) in Amaranth's simulator, against a memory of one
cycle's read latency: the parts of each word read as a fold computes are whole at its OUTPUT cycle,
for folds as long as the parts and longer; and the plan's threshold fold (hw/design/plan.py) never
exceeds a fold's passes and never costs more block RAM than unfolded words."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from bebert.hw.blocks.word_assembler import WordAssembler
from bebert.hw.design.config import HardwareConfig
from bebert.hw.design.plan import AcceleratorPlan
from bebert.hw.flows.dse import model_shape
from bebert.hw.resources import block_ram_grid

PARTS, WIDTH = 4, 12


def assemble(folds: list[int], words: list[int]) -> list[tuple[int, int]]:
    """Read word i for ``folds[i]`` cycles (``read`` high), then a drain cycle (low); returns, per
    word, the assembled word at the cycle after the drain (the fold's OUTPUT) and before its first read."""
    dut = WordAssembler(PARTS, WIDTH)
    mask = (1 << WIDTH) - 1
    memory = [(w >> (p * WIDTH)) & mask for w in words for p in range(PARTS)]
    seen = []

    async def bench(ctx):
        addressed = None  # the address the memory registered at the last edge
        before = ctx.get(dut.word)
        for index, cycles in enumerate(folds):
            for cycle in range(cycles + 2):  # the fold's reads, its drain, its output
                reading = cycle < cycles
                ctx.set(dut.read, reading)
                ctx.set(dut.rdata, 0 if addressed is None else memory[addressed])
                if cycle == cycles + 1:
                    seen.append((ctx.get(dut.word), before))
                addressed = index * PARTS + ctx.get(dut.part) if reading else None
                await ctx.tick()
            before = ctx.get(dut.word)

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    return seen


def test_word_is_whole_at_the_output_cycle():
    rng = random.Random(7)
    words = [rng.getrandbits(PARTS * WIDTH) for _ in range(5)]
    folds = [PARTS, PARTS + 3, PARTS, 2 * PARTS, PARTS + 1]
    seen = assemble(folds, words)
    assert seen[0][1] == 0  # no X and nothing stale after reset: the register starts at zero
    assert [word for word, _ in seen] == words


def test_a_fold_shorter_than_its_parts_leaves_the_word_incomplete():
    """Why the plan folds threshold words no further than a fold's passes."""
    words = [(1 << (PARTS * WIDTH)) - 1]
    (word, _), = assemble([PARTS - 1], words)
    assert word == (1 << ((PARTS - 1) * WIDTH)) - 1  # the last part never arrived


# (PE, SIMD, activation bits, stream width or None for two resident members, whether folding saves tiles):
# a layer slot holds a few hundred wide words, while a resident member's 12 layers fill the tiles' depth
@pytest.mark.parametrize("pe,simd,act_bits,width,saves", [(32, 64, 4, 1024, True), (64, 256, 4, None, False),
                                                          (128, 256, 4, 512, True), (64, 128, 1, 1024, False)])
def test_threshold_fold_fits_the_passes_and_saves_block_ram(pe, simd, act_bits, width, saves):
    setting = "1-1-4" if act_bits == 4 else "1-1-1"
    plan = AcceleratorPlan(HardwareConfig(pe, simd, None if width else 2, act_bits, width),
                           model_shape(f"bert-base:{setting}:2"))
    fold = plan.threshold_fold
    assert fold & (fold - 1) == 0
    assert fold <= min(plan.out_passes(j) for j in plan.jobs if not j.affine)
    assert plan.threshold_word_width * fold >= plan.threshold_width > plan.threshold_word_width * (fold - 1)
    words, part = plan.memory_shapes["thresholds"]
    unfolded_words = words // fold

    def ramb36(depth, bits):
        _, tiles = block_ram_grid(depth, bits, plan.write_chunk(bits))
        return tiles.bram36 + tiles.bram18 / 2

    assert ramb36(words, part) <= ramb36(unfolded_words, plan.threshold_width)
    if saves:
        assert fold > 1 and ramb36(words, part) < ramb36(unfolded_words, plan.threshold_width)
