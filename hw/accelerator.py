"""The accelerator: one PE array that runs every member of the ensemble, one after another.

Blocks (the PE engine, engine.py): the row buffers (buffers.py: the input buffer, one row of codes from the activation
stream, reused by every output fold and by every job of a step; the chain buffer, codes a job
hands to the next one of its step), per resident member three parameter memories (param_memory.py), the PE array
(pe_array.py), the output unit (output_unit.py), the ensemble unit (ensemble_unit.py) and the
controller below, which walks the plan's steps (plan.py) for every token and every member.

Streams (valid/ready, ``amaranth.lib.stream``):

* ``act_in``: SIMD codes per beat, code c at bits [c*A, (c+1)*A) (A = act_bits; two's complement
  low bits, or one bit, 1 for +1); a row of K codes is ceil(K / SIMD) beats, zero-padded;
* ``result_out``: PE lanes of ``value_bits`` signed values per beat, one beat per output fold of
  every job that streams out; after the last member, one more beat whose lane 0 is the class;
* ``load_in``: when parameters stream (fewer members resident than the ensemble has, or
  ``reload`` at start), each member's weight, threshold and affine words, in that order, before
  it runs (images.py).

Control: ``start`` (with ``tokens``, the sentence length, and ``reload``), ``busy``, ``done``
(held until the next start), and two counters readable by the testbench: ``cycles`` (cycles of
the run not spent waiting on a stream) and ``stalls`` (cycles waiting on a stream).

Cycle model (``run_cycles``), exact against ``cycles``: per member, the streamed parameter words
(if any), then per step and row: one cycle per input beat, and per job and output fold
in_folds x planes accumulating cycles, one drain cycle (memory and accumulator latency) and one
output cycle; after the last member one settle cycle (the ensemble unit's registered logits join
the scores) and one answer cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .blocks.ensemble_unit import SETTLE_CYCLES
from .blocks.param_memory import mux_luts
from .blocks.pe_array import fold_cycles
from .design.plan import MEMORIES, AcceleratorPlan
from .engine import PEEngine, engine_resources, image_name
from .resources import Resources, coefficients, linear_cost

COUNTER_BITS = 40
DRAIN_CYCLES = 1  # the last pass's weights arrive and accumulate one cycle after it was issued
OUTPUT_CYCLES = 1  # the output unit's result leaves (or enters the chain buffer)


def image_folders(plan: AcceleratorPlan) -> dict[str, str]:
    """Each parameter memory's instance path in the flattened design (its Verilog RAM module is
    ``ram`` inside the ``<memory><slot>`` submodule, below) -> the folder of its tile images."""
    return {f"{name}{s}.ram": image_name(s, name) for s in range(plan.resident) for name in MEMORIES}


class Accelerator(wiring.Component):
    def __init__(self, plan: AcceleratorPlan):
        self.plan = plan
        cfg = plan.config
        super().__init__({
            "start": In(1),
            "tokens": In(range(plan.max_tokens + 1)),
            "reload": In(1),
            "busy": Out(1),
            "done": Out(1),
            "cycles": Out(COUNTER_BITS),
            "stalls": Out(COUNTER_BITS),
            "act_in": In(stream.Signature(cfg.simd * cfg.act_bits)),
            "result_out": Out(stream.Signature(cfg.pe * plan.value_bits)),
            "load_in": In(stream.Signature(plan.load_width)),
        })

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        jobs, members, resident = plan.jobs, plan.ensemble_members, plan.resident
        engine = PEEngine(m, plan)
        pc, member, slot, buffers, ens = engine.pc, engine.member, engine.slot, engine.buffers, engine.ensemble
        in_fold, out_fold, w_addr = engine.in_fold, engine.out_fold, engine.weight_address

        # this controller's own job-table columns: how it walks the plan's steps, row by row
        step_of = {job.name: (step, i) for step in plan.steps for i, job in enumerate(step.jobs)}
        first_pc = {}
        for index, job in enumerate(jobs):
            first_pc.setdefault(step_of[job.name][0].name, index)
        t_stream = engine.field("stream", (j.to_stream for j in jobs))
        t_last = engine.field("last", (step_of[j.name][1] == len(step_of[j.name][0].jobs) - 1 for j in jobs))
        t_per_token = engine.field("per_token", (step_of[j.name][0].per_token for j in jobs))
        t_step_start = engine.field("step_start", (first_pc[step_of[j.name][0].name] for j in jobs))
        restart_w_base = engine.field("restart_weight_base",
                                      (engine.weight_bases[first_pc[step_of[j.name][0].name]] for j in jobs))

        row = Signal(range(plan.max_tokens + 1))
        tokens = Signal(range(plan.max_tokens + 1))
        streaming = Signal()
        total_words = plan.weight_depth + plan.threshold_depth + plan.affine_depth
        load_count = Signal(range(total_words + 1))
        depths = {name: words for name, (words, _) in plan.memory_shapes.items()}
        m.d.comb += [buffers.load_word.eq(in_fold), buffers.load_data.eq(self.act_in.payload)]

        # ---- the controller ---------------------------------------------------------------------
        stall = Signal()
        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [tokens.eq(Mux(self.tokens == 0, 1, self.tokens)), member.eq(0), slot.eq(0),
                                 pc.eq(0), row.eq(0), in_fold.eq(0), out_fold.eq(0), engine.col_base.eq(0),
                                 engine.plane.eq(0), w_addr.eq(0), load_count.eq(0), self.done.eq(0),
                                 streaming.eq(self.reload | (resident < members)),
                                 self.cycles.eq(0), self.stalls.eq(0)]
                    m.d.comb += ens.clear.eq(1)
                    with m.If(self.reload | (resident < members)):
                        m.next = "LOAD_PARAMS"
                    with m.Else():
                        m.next = "LOAD"

            with m.State("LOAD_PARAMS"):
                m.d.comb += [self.load_in.ready.eq(1), stall.eq(~self.load_in.valid)]
                with m.If(self.load_in.valid):
                    offsets = {"weights": 0, "thresholds": plan.weight_depth,
                               "affine": plan.weight_depth + plan.threshold_depth}
                    for name in MEMORIES:
                        here = load_count < offsets[name] + depths[name]
                        if offsets[name]:
                            here &= load_count >= offsets[name]
                        for s, mem in enumerate(engine.memories[name]):
                            m.d.comb += [mem.we.eq(here & (slot == s)), mem.waddr.eq(load_count - offsets[name]),
                                         mem.wdata.eq(self.load_in.payload)]
                    m.d.sync += load_count.eq(load_count + 1)
                    with m.If(load_count == total_words - 1):
                        m.d.sync += load_count.eq(0)
                        m.next = "LOAD"

            with m.State("LOAD"):
                m.d.comb += [self.act_in.ready.eq(1), stall.eq(~self.act_in.valid)]
                with m.If(self.act_in.valid):
                    m.d.comb += buffers.load.eq(1)
                    m.d.sync += in_fold.eq(in_fold + 1)
                    with m.If(in_fold == engine.in_folds - 1):
                        m.d.sync += in_fold.eq(0)
                        m.next = "COMPUTE"

            engine.compute_states()

            with m.State("OUTPUT"):
                proceed = Signal()
                with m.If(t_stream):
                    m.d.comb += [self.result_out.valid.eq(1), proceed.eq(self.result_out.ready),
                                 stall.eq(~self.result_out.ready),
                                 self.result_out.payload.eq(engine.output_unit.values.as_value())]
                with m.Else():
                    m.d.comb += proceed.eq(1)
                with m.If(proceed):
                    m.d.comb += buffers.chain.eq(engine.to_chain)
                    m.d.comb += ens.accumulate.eq(engine.to_ensemble)
                    m.d.sync += out_fold.eq(out_fold + 1)
                    with m.If(out_fold != engine.out_folds - 1):
                        m.next = "COMPUTE"
                    with m.Else():
                        m.d.sync += out_fold.eq(0)
                        with m.If(~t_last):  # the next job of the step reads the buffers as they are
                            m.d.sync += [pc.eq(pc + 1), w_addr.eq(engine.next_weight_base)]
                            m.next = "COMPUTE"
                        with m.Elif(t_per_token & (row != tokens - 1)):  # the step's next token
                            m.d.sync += [row.eq(row + 1), pc.eq(t_step_start), w_addr.eq(restart_w_base)]
                            m.next = "LOAD"
                        with m.Elif(pc != len(jobs) - 1):  # the next step
                            m.d.sync += [row.eq(0), pc.eq(pc + 1), w_addr.eq(engine.next_weight_base)]
                            m.next = "LOAD"
                        with m.Elif(member != members - 1):  # the next member
                            m.d.sync += [row.eq(0), pc.eq(0), w_addr.eq(0), member.eq(member + 1),
                                         slot.eq(Mux(slot == resident - 1, 0, slot + 1))]
                            with m.If(streaming):
                                m.next = "LOAD_PARAMS"
                            with m.Else():
                                m.next = "LOAD"
                        with m.Else():
                            m.next = "SETTLE"

            with m.State("SETTLE"):  # the last member's logits join the scores
                m.next = "ANSWER"

            with m.State("ANSWER"):
                m.d.comb += [self.result_out.valid.eq(1), stall.eq(~self.result_out.ready),
                             self.result_out.payload.eq(ens.answer)]
                with m.If(self.result_out.ready):
                    m.d.sync += self.done.eq(1)
                    m.next = "IDLE"

        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        with m.If(self.busy):
            with m.If(stall):
                m.d.sync += self.stalls.eq(self.stalls + 1)
            with m.Else():
                m.d.sync += self.cycles.eq(self.cycles + 1)
        return m


# ---- the cycle model ------------------------------------------------------------------------------
@dataclass(frozen=True)
class CycleCount:
    """Cycles of one inference, by where they go (stream waits excluded)."""

    by_step: dict  # step name -> cycles, summed over members
    parameter_load: int
    answer: int

    @property
    def total(self) -> int:
        return sum(self.by_step.values()) + self.parameter_load + self.answer


def job_cycles(plan: AcceleratorPlan, job) -> int:
    """Cycles of one job on one row: per output fold, the passes, the drain and the output cycle."""
    return plan.out_folds(job) * (fold_cycles(plan.in_folds(job), job.planes) + DRAIN_CYCLES + OUTPUT_CYCLES)


def step_cycles(plan: AcceleratorPlan, step) -> int:
    """Cycles of one step on one row: its input beats, then its jobs."""
    return plan.in_folds(step.jobs[0]) + sum(job_cycles(plan, j) for j in step.jobs)


def run_cycles(plan: AcceleratorPlan, tokens: int, reload: bool = False) -> CycleCount:
    """The ``cycles`` counter after one inference of ``tokens`` tokens, exactly."""
    members = plan.ensemble_members
    by_step = {}
    for step in plan.steps:
        rows = tokens if step.per_token else 1
        by_step[step.name] = members * rows * step_cycles(plan, step)
    streamed = reload or plan.resident < members
    words = plan.weight_depth + plan.threshold_depth + plan.affine_depth
    return CycleCount(by_step, members * words if streamed else 0, SETTLE_CYCLES + 1)


# ---- the resource model ---------------------------------------------------------------------------
# LUTs per structure count of the top module without its blocks, fitted on Yosys' synth_xilinx
# (scripts/resource_check.py --fit): per bit of one member slot's memory words (the write data,
# gated by the load stream's valid), per such bit selected among the resident slots (the read
# data's slot mux, param_memory.mux_luts), per SIMD bit (the activation mask and the operand
# registers' inputs), and the rest (FSM, job table, counters, addresses).
LUT_COEFFICIENTS = coefficients("controller")
CONTROL_FFS = 2 * COUNTER_BITS + 120


def controller_features(plan: AcceleratorPlan) -> dict[str, float]:
    word_bits = plan.weight_width + plan.threshold_width + plan.affine_width
    return {"memory_word_bits": word_bits, "slot_select_bits": word_bits * mux_luts(plan.resident),
            "simd_bits": plan.config.simd, "control": 1.0}


def controller_resources(plan: AcceleratorPlan) -> Resources:
    """The top module's own logic: the controller's state, job table, counters and addresses, the
    parameter memories' write data and the resident slots' read mux, the activation mask and the
    PE array's operand registers."""
    simd = plan.config.simd
    operand_ffs = simd + simd.bit_length() + 5  # activations, valid, the pass's flags
    return Resources(lut=linear_cost(LUT_COEFFICIENTS, controller_features(plan)), ff=operand_ffs + CONTROL_FFS,
                     carry=2 * COUNTER_BITS // 4)


def accelerator_resources(plan: AcceleratorPlan) -> dict[str, Resources]:
    """Every block's resources, as synth.py names the blocks (memories summed over resident slots)."""
    return {"controller": controller_resources(plan), **engine_resources(plan)}
