"""The PE engine: the PE array's datapath and the controller states both tops share.

``PEEngine(m, plan)`` builds into the module ``m``: the job table (the current job's fields, looked
up by the program counter ``pc``), a step's state registers (the member and its resident slot or
layer slot, the output and input folds, the bit plane, the weight address), the three parameter
memories (param_memory.py) per resident member, or once with two layer slots for streamed
parameters, the row buffers (buffers.py), the PE array (pe_array.py) with its operand registers, the
output unit (output_unit.py) and the ensemble unit (ensemble_unit.py).

``compute_states`` adds COMPUTE and DRAIN to the caller's FSM: one output fold, the planes most
significant first and the input folds inner (a fold's weight words are read once per plane), then
the drain cycle, then the caller's OUTPUT state, which decides where the fold goes and what follows.

The caller drives the buffers' load and chain ports (``buffers.load``, ``load_word``, ``load_data``,
``chain``) and the ensemble unit's ``clear`` and ``accumulate``: the matrix-product accelerator
(accelerator.py) loads rows from its input stream, the encoder (encoder_accelerator.py) from its
row stores.

Resource model (``engine_resources``): its blocks' own models, by block as synthesis names them
(hw/flows/synth.py); the job table, state and operand registers count with the caller's controller.
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal, Value, signed

from .blocks.buffers import RowBuffers, buffers_resources
from .blocks.ensemble_unit import EnsembleUnit, ensemble_unit_resources
from .blocks.output_unit import OutputUnit, output_unit_resources
from .blocks.own_module import OwnModule
from .blocks.param_memory import ParamMemory, memory_resources
from .blocks.pe_array import PEArray, pe_array_resources
from .blocks.word_assembler import WordAssembler, assembler_resources
from .design.plan import MEMORIES, AcceleratorPlan
from .resources import Resources

IMAGES_FOLDER = "images"


def image_name(slot: int, memory: str) -> str:
    """The folder of a resident member slot's memory image tiles, relative to the folder the Verilog
    is simulated or synthesized in (the generated folder)."""
    return f"{IMAGES_FOLDER}/member{slot}_{memory}"


def constant_table(m: Module, name: str, values, index) -> Signal:
    """A signal holding ``values[index]``: a table of constants, looked up combinationally."""
    values = [int(v) for v in values]
    signal = Signal(range(min(values + [0]), max(values + [1]) + 1), name=name)
    m.d.comb += signal.eq(Array(Const(v, signal.shape()) for v in values)[index])
    return signal


class PEEngine:
    def __init__(self, m: Module, plan: AcceleratorPlan):
        self.m, self.plan = m, plan
        cfg = plan.config
        pe, simd, bits = cfg.pe, cfg.simd, cfg.act_bits
        jobs, members, resident = plan.jobs, plan.ensemble_members, plan.resident

        # ---- the job table: the current job's fields, looked up once by the program counter -----
        self.pc = Signal(range(len(jobs)))
        self.k = self.field("k", (j.k for j in jobs))
        self.out_folds = self.field("out_folds", (plan.out_folds(j) for j in jobs))
        self.in_folds = self.field("in_folds", (plan.in_folds(j) for j in jobs))
        self.planes = self.field("planes", (j.planes for j in jobs))
        xnor = self.field("xnor", (j.input_codes.bipolar for j in jobs))
        signed_codes = self.field("signed", (j.input_codes.signed and not j.input_codes.bipolar for j in jobs))
        self.affine = self.field("affine", (j.affine for j in jobs))
        low = self.field("low", (0 if j.affine else j.output_codes.low for j in jobs))
        bipolar = self.field("bipolar", (bool(j.output_codes and j.output_codes.bipolar) for j in jobs))
        source = self.field("source", (j.source for j in jobs))
        self.to_chain = self.field("chain", (j.to_chain for j in jobs))
        self.to_ensemble = self.field("ensemble", (j.to_ensemble for j in jobs))
        param_base = self.field("param_base", (plan.param_base[j.name] for j in jobs))
        self.weight_bases = [plan.weight_base[j.name] for j in jobs]
        self.next_weight_base = self.field("next_weight_base", self.weight_bases[1:] + [0])  # the job after

        # ---- a step's state ---------------------------------------------------------------------
        self.member = Signal(range(max(members, 2)))  # at least one bit, even for one member
        self.slot = Signal(range(max(resident, 2)))  # the resident member's memories, or the layer slot
        self.out_fold = Signal(range(max(plan.out_folds(j) for j in jobs) + 1))
        self.in_fold = Signal(range(max(plan.in_folds(j) for j in jobs) + 1))
        self.col_base = Signal(range(plan.input_buffer_codes + plan.chain_buffer_codes + simd + 1))
        self.plane = Signal(range(max(bits, 2)))
        self.weight_address = Signal(range(plan.weight_depth + 1))
        self.issue = Signal()  # a pass is issued this cycle (COMPUTE)

        # ---- datapath blocks ----------------------------------------------------------------------
        # the two largest blocks, converted beside the rest by the generator (own_module.py)
        pe_array = PEArray(pe, simd, plan.acc_bits, plan.product_modes, bits)
        m.submodules.pe_array = OwnModule(pe_array, "pe_array", clocked=True)
        self.output_unit = out_unit = OutputUnit(plan)
        m.submodules.output_unit = OwnModule(out_unit, "output_unit", clocked=False)
        m.submodules.ensemble_unit = self.ensemble = ens = EnsembleUnit(plan.labels, plan.value_bits,
                                                                        plan.score_bits, plan.combine)
        self.memories = {name: [] for name in MEMORIES}
        streamed = cfg.param_width if cfg.streamed else None
        for s in range(plan.memory_sets):
            for name, (words, width) in plan.memory_shapes.items():
                # streamed: the two layer slots, filled a chunk at a time, no image
                mem = ParamMemory(width, max(words, 1), None if streamed else image_name(s, name),
                                  chunk=plan.write_chunk(width))
                m.submodules[f"{name}{s}"] = mem
                self.memories[name].append(mem)
        m.submodules.buffers = self.buffers = buffers = RowBuffers(plan)

        # memory read addresses: weights by the running address, parameters by job and output fold
        # (a threshold word by its parts, read as the fold computes: word_assembler.py); streamed,
        # the step's layer slot's words start past the other's
        param_addr = Signal(range(max(plan.threshold_depth, plan.affine_depth) + 1))
        m.d.comb += param_addr.eq(param_base + self.out_fold)
        addresses = {"weights": self.weight_address, "thresholds": param_addr, "affine": param_addr}
        fold = plan.threshold_fold
        if fold > 1:
            m.submodules.threshold_words = assembler = WordAssembler(fold, plan.threshold_word_width)
            m.d.comb += assembler.read.eq(self.issue)
            addresses["thresholds"] = Cat(assembler.part, param_addr)  # fold words of a fold: a power of two
        if streamed:
            for name, mem in self.memories.items():
                m.d.comb += mem[0].raddr.eq(self.slot_address(name, addresses[name], self.slot))
            read = {name: self.memories[name][0].rdata for name in MEMORIES}
        else:
            for s in range(resident):
                m.d.comb += [self.memories[name][s].raddr.eq(addresses[name]) for name in MEMORIES]
            read = {name: Array(mem.rdata for mem in self.memories[name])[self.slot] for name in MEMORIES}
        if fold > 1:
            m.d.comb += assembler.rdata.eq(read["thresholds"])
            read["thresholds"] = assembler.word

        # one bit plane of one input fold, masked past the row's K codes (stale or padding codes).
        # Planes run most significant first: pass ``plane`` reads bit plane planes - 1 - plane.
        remaining = Signal(signed(self.col_base.shape().width + 2))
        m.d.comb += remaining.eq(self.k - self.col_base)
        mask = Cat(*(remaining > s for s in range(simd)))
        bit_plane = Signal.like(self.plane)
        m.d.comb += bit_plane.eq(self.planes - 1 - self.plane)
        m.d.comb += [buffers.source.eq(source), buffers.plane.eq(bit_plane), buffers.fold.eq(self.in_fold),
                     buffers.chain_word.eq(self.out_fold), buffers.chain_data.eq(out_unit.codes)]
        activations = buffers.activations & mask

        # PE pipeline registers: one pass issued per cycle, accumulated the next
        m.d.sync += [pe_array.enable.eq(self.issue)]
        operands = {name: Signal.like(getattr(pe_array, name), name=f"issued_{name}", reset_less=True)
                    for name in ("activations", "clear", "plane", "negative", "xnor_mode", "valid")}
        with m.If(self.issue):
            m.d.sync += [
                operands["activations"].eq(activations),
                operands["clear"].eq((self.in_fold == 0) & (self.plane == 0)),
                operands["plane"].eq(bit_plane),
                operands["negative"].eq(xnor | (signed_codes & (self.plane == 0))),  # XNOR, or the sign plane
                operands["xnor_mode"].eq(xnor),
                operands["valid"].eq(Mux(remaining >= simd, simd, remaining)),
            ]
        m.d.comb += [getattr(pe_array, name).eq(value) for name, value in operands.items()]
        m.d.comb += [
            pe_array.weights.eq(read["weights"]),
            out_unit.accumulators.eq(pe_array.accumulators),
            out_unit.thresholds.eq(read["thresholds"]),
            out_unit.affine_params.eq(read["affine"]),
            out_unit.affine.eq(self.affine),
            out_unit.low.eq(low),
            out_unit.bipolar.eq(bipolar),
            ens.logits.eq(Cat(*(out_unit.values[c] for c in range(plan.labels)))),
            ens.alpha.eq(Array(Const(int(a), ens.alpha.shape()) for a in plan.alphas)[self.member]),
        ]

    def slot_address(self, memory: str, word: Value, slot: Value) -> Value:
        """Streamed parameters: the address of ``word`` of layer slot ``slot`` in ``memory`` (slot 1's
        words follow slot 0's)."""
        depth = self.plan.slot_depth[memory]
        return word + Mux(slot, depth, 0)

    def field(self, name: str, values) -> Signal:
        """A job-table column: the value of ``values`` (one per job) for the job at the program counter."""
        return constant_table(self.m, f"job_{name}", values, self.pc)

    def compute_states(self) -> None:
        """COMPUTE (the fold's passes, a cycle each) and DRAIN, then OUTPUT: call inside the caller's FSM."""
        m = self.m
        with m.State("COMPUTE"):  # planes outer, input folds inner
            m.d.comb += self.issue.eq(1)
            m.d.sync += [self.in_fold.eq(self.in_fold + 1), self.col_base.eq(self.col_base + self.plan.config.simd),
                         self.weight_address.eq(self.weight_address + 1)]
            with m.If(self.in_fold == self.in_folds - 1):
                m.d.sync += [self.in_fold.eq(0), self.col_base.eq(0), self.plane.eq(self.plane + 1)]
                with m.If(self.plane == self.planes - 1):
                    m.d.sync += self.plane.eq(0)
                    m.next = "DRAIN"
                with m.Else():  # the next plane reads this output fold's weights again
                    m.d.sync += self.weight_address.eq(self.weight_address + 1 - self.in_folds)
        with m.State("DRAIN"):
            m.next = "OUTPUT"


# ---- the resource model ---------------------------------------------------------------------------
def engine_resources(plan: AcceleratorPlan) -> dict[str, Resources]:
    """The engine's blocks' resources (memories summed over the resident slots)."""
    cfg = plan.config
    blocks = {
        "buffers": buffers_resources(plan),
        "pe_array": pe_array_resources(cfg.pe, cfg.simd, plan.acc_bits, plan.product_modes),
        "output_unit": output_unit_resources(plan),
        "ensemble_unit": ensemble_unit_resources(plan.labels, plan.value_bits, plan.score_bits, plan.combine),
    }
    if plan.threshold_fold > 1:
        blocks["threshold_words"] = assembler_resources(plan.threshold_fold, plan.threshold_word_width)
    for name, (words, width) in plan.memory_shapes.items():
        blocks[f"{name}_memory"] = memory_resources(max(words, 1), width, plan.write_chunk(width)) * plan.memory_sets
    return blocks
