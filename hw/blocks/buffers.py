"""The row buffers: the input buffer (one row of codes from the activation stream, reused by every
output fold and every job of a step) and the chain buffer (the codes a job hands to the next job of
its step), each one register per bit plane of the codes.

* **load**: one activation beat, SIMD codes (code c at bits [c*A, (c+1)*A) of ``load_data``), into
  word ``load_word`` of the input buffer, split into its bit planes;
* **chain**: one output fold's PE codes (the output unit's storage format) into word ``chain_word``
  of the chain buffer;
* **read**: bit plane ``plane`` of SIMD-code word ``fold`` of the buffer ``source`` picks (0: input,
  1: chain), combinationally.

A block of its own, so that synthesis sees it apart from the controller: the buffers are most of
the top's logic and depend only on the row lengths, PE, SIMD and the code width, which many design
points share.

Cycle model: none of its own (writes take the controller's load and output cycles). Resource model
(``buffers_resources``): one flip-flop per buffer bit; LUTs per buffer bit (write enable, data
select, read mux) and per bit of the read port.
"""

from __future__ import annotations

from amaranth import Array, Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..design.plan import AcceleratorPlan
from ..resources import Resources, coefficients, linear_cost


class RowBuffers(wiring.Component):
    def __init__(self, plan: AcceleratorPlan):
        self.plan = plan
        cfg = plan.config
        self.input_words = plan.input_buffer_codes // cfg.simd
        self.chain_words = plan.chain_buffer_codes // cfg.pe
        read_words = max(self.input_words, plan.chain_buffer_codes // cfg.simd)
        super().__init__({
            "load": In(1),
            "load_word": In(range(max(self.input_words, 2))),
            "load_data": In(cfg.simd * cfg.act_bits),
            "chain": In(1),
            "chain_word": In(range(max(self.chain_words, 2))),
            "chain_data": In(cfg.pe * cfg.act_bits),
            "source": In(1),
            "plane": In(range(max(cfg.act_bits, 2))),
            "fold": In(range(max(read_words, 2))),
            "activations": Out(cfg.simd),
        })

    def elaborate(self, platform):
        m = Module()
        plan, cfg = self.plan, self.plan.config
        simd, pe, bits = cfg.simd, cfg.pe, cfg.act_bits
        # Datapath registers: no reset (every row is written before it is read), which saves the
        # reset logic in hardware and in simulation.
        input_planes = [Signal(plan.input_buffer_codes, name=f"input_plane{b}", reset_less=True) for b in range(bits)]
        chain_planes = [Signal(plan.chain_buffer_codes, name=f"chain_plane{b}", reset_less=True) for b in range(bits)]
        with m.If(self.load):
            for b in range(bits):
                plane_bits = Cat(*(self.load_data[c * bits + b] for c in range(simd)))
                m.d.sync += input_planes[b].word_select(self.load_word, simd).eq(plane_bits)
        with m.If(self.chain):
            for b in range(bits):
                plane_bits = Cat(*(self.chain_data[p * bits + b] for p in range(pe)))
                m.d.sync += chain_planes[b].word_select(self.chain_word, pe).eq(plane_bits)
        m.d.comb += self.activations.eq(Mux(self.source,
                                            Array(chain_planes)[self.plane].word_select(self.fold, simd),
                                            Array(input_planes)[self.plane].word_select(self.fold, simd)))
        return m


# ---- the resource model ---------------------------------------------------------------------------
# LUTs per structure count, fitted on Yosys' synth_xilinx of this block (scripts/resource_check.py
# --fit): per buffer bit (its write enable, data select and share of the read mux) and per bit of
# the read port (SIMD codes' bit planes).
LUT_COEFFICIENTS = coefficients("buffers")


def buffers_features(plan: AcceleratorPlan) -> dict[str, float]:
    cfg = plan.config
    codes = plan.input_buffer_codes + plan.chain_buffer_codes
    return {"buffer_bits": codes * cfg.act_bits, "read_bits": cfg.simd * cfg.act_bits}


def buffers_resources(plan: AcceleratorPlan) -> Resources:
    features = buffers_features(plan)
    return Resources(lut=linear_cost(LUT_COEFFICIENTS, features), ff=features["buffer_bits"])
