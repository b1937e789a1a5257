"""The encoder's sequencer in Amaranth's simulator, against an engine and units that answer after
random delays: every member's steps come out in the schedule's order (``member_order``), none
before the row it reads was written, and each the cycle after its last event or the cycle the
engine was ready again, whichever is later (no cycle lost)."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from bebert.hw.blocks.encoder_sequencer import EncoderSequencer
from bebert.hw.schedule import STEP_KINDS, member_order



@pytest.mark.parametrize("members,layers,tokens,length,seed", [(2, 2, 4, 4, 1), (1, 2, 4, 1, 2), (2, 1, 8, 5, 3)])
def test_steps_follow_the_schedule_as_soon_as_their_rows_are_there(members, layers, tokens, length, seed):
    rng = random.Random(seed)
    unit = EncoderSequencer(members, layers, tokens)
    taken = []  # (cycle, member, kind, layer, token)

    async def bench(ctx):
        codes_at = {}  # token -> cycle its codes row was last written
        context_at = None
        events = []  # (cycle, "codes" or "context", token)
        engine_free = 0
        for t in range(length):  # the embeddings' codes
            events.append((rng.randint(1, 40), "codes", t))
        ctx.set(unit.length, length)
        ctx.set(unit.start, 1)
        await ctx.tick()
        ctx.set(unit.start, 0)
        cycle = 1
        while ctx.get(unit.busy):
            assert cycle < 20_000, "the sequencer stopped"
            due = sorted(e for e in events if e[0] <= cycle)
            codes = next((e for e in due if e[1] == "codes"), None)
            context = next((e for e in due if e[1] == "context"), None)
            for event in (codes, context):
                if event is not None:
                    events.remove(event)
            ctx.set(unit.codes_written, codes is not None)
            ctx.set(unit.codes_row, codes[2] if codes else 0)
            ctx.set(unit.context_written, context is not None)
            ready = cycle >= engine_free
            ctx.set(unit.step.ready, ready)
            if ctx.get(unit.step.valid) and ready:
                p = unit.step.payload
                kind, token = STEP_KINDS[ctx.get(p.kind).value], ctx.get(p.token)
                taken.append((cycle, ctx.get(p.member), kind, ctx.get(p.layer), token))
                # the event it waited for came at least a cycle ago, and no later than it had to
                if kind == "attention_output":
                    wait = context_at
                elif kind == "head":
                    wait = max(codes_at[t] for t in range(length))
                else:
                    wait = codes_at[token]
                assert wait is not None and wait < cycle
                assert cycle == max(wait + 1, engine_free), (kind, token, cycle, wait, engine_free)
                engine_free = cycle + rng.randint(1, 6)
                if kind == "query":
                    context_at = None
                    events.append((engine_free + rng.randint(0, 30), "context", token))
                if kind in ("query", "ffn"):
                    del codes_at[token]
                if kind in ("attention_output", "ffn"):
                    events.append((engine_free + rng.randint(0, 30), "codes", token))
                if kind == "head":
                    codes_at = {}
                    events += [(engine_free + rng.randint(1, 40), "codes", t) for t in range(length)]
            await ctx.tick()
            if codes is not None:
                codes_at[codes[2]] = cycle
            if context is not None:
                context_at = cycle
            cycle += 1

    simulator = Simulator(unit)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    order = [(s.kind, s.layer, s.token) for s in member_order(layers, length)]
    assert [(member, kind, layer, token) for _, member, kind, layer, token in taken] == [
        (member, *step) for member in range(members) for step in order]
