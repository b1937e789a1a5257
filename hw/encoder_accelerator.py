"""The encoder on chip: the whole BERT encoder of every member, and the ensemble, on one PE array and
the encoder's units; the host streams each token's embedding row and reads the class.

Blocks: the sequencer (encoder_sequencer.py) chooses the PE array's next step; the PE engine
(engine.py) runs it, loading its row from the codes store (a row of codes per token) or the context
store (one row) (row_store.py). Its results go by job: K and V codes through a row gearbox each
(row_gearbox.py; PE codes to head slices) into the attention units' banks, Q codes through a third
into the attention pipeline (attention_pipeline.py), whose context codes fill the context store;
the attention output's and the FFN's fixed-point rows through a fourth (PE values to L lanes) into
the residual norm (residual_norm.py), tagged with the token, the LayerNorm and the staircase that
follow, whose codes fill the codes store; FFN-in and pooler codes into the chain buffer; logits into
the ensemble unit. The encoder's constants are parameter memories with images
(generator/encoder_images.py), the exponential table once per softmax lane.

Streams and control:

* ``embed_in``: per member (member 0 first), per token, the summed embedding row in the datapath's
  fixed point, L lanes a beat (``ceil(H / L)`` beats a row), taken while that member's rows pass the
  residual add into the LayerNorm: from ``start`` for member 0, from each member's head on for the
  next;
* ``result_out``: the ensemble's class, one beat per sentence;
* ``start`` with ``length`` (tokens, 1 to the build's longest sentence; 0 reads as 1); ``busy``,
  ``done`` (held until the next start), ``cycles`` (from start to the answer taken);
* ``trace_codes``, ``trace_context``, ``trace_logits`` (valid and payload, never waiting; for tests): every beat written
  into the codes store (with its token), into the context store, and each member's logits.

Every member must be resident (members that stream their parameters in are issue 16's).

Resource model (``encoder_accelerator_resources``, below the RTL): the sum of the blocks' own models,
by block as synthesis names them (hw/flows/synth.py), and the top's own logic (``controller_resources``);
checked against Yosys by scripts/resource_check.py (results/resources.md).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .accelerator import COUNTER_BITS
from .blocks.attention_pipeline import AttentionPipeline
from .blocks.attention_products import context_resources, score_resources, stored_bits
from .blocks.credited_output import fifo_resources
from .blocks.encoder_sequencer import EncoderSequencer, StepKind, sequencer_resources
from .blocks.layer_norm import layer_norm_resources
from .blocks.param_loader import ParamLoader, loader_resources, loader_shape
from .blocks.param_memory import ParamMemory, memory_resources, mux_luts
from .blocks.residual_norm import ResidualNorm
from .blocks.residual_stream import residual_resources
from .blocks.row_gearbox import GearboxShape, RowGearbox, gearbox_resources
from .blocks.row_store import RowStore, RowStoreShape, row_store_resources
from .blocks.softmax import softmax_resources
from .blocks.staircase_quantizer import quantizer_resources
from .design.plan import MEMORIES, AcceleratorPlan
from .encoder_units import EncoderUnits
from .engine import IMAGES_FOLDER, PEEngine, constant_table, engine_resources
from .generator.encoder_images import ENCODER_MEMORIES, EncoderLayout
from .resources import Resources, coefficients, linear_cost

TAG_QUEUE = 4  # product rows' tags waiting for the residual add (a row is tagged as its step is taken)


def encoder_image_name(memory: str) -> str:
    """The folder of an encoder memory's tile images (every resident member's constants)."""
    return f"{IMAGES_FOLDER}/encoder_{memory}"


class JobRole:
    """Where a job's output folds go."""

    KEY, VALUE, QUERY, RESIDUAL, CHAIN, LOGITS = range(6)


def job_role(name: str, affine: bool) -> int:
    suffix = name.split(".")[-1]
    if suffix in ("key", "value", "query"):
        return {"key": JobRole.KEY, "value": JobRole.VALUE, "query": JobRole.QUERY}[suffix]
    if name == "classifier":
        return JobRole.LOGITS
    return JobRole.RESIDUAL if affine else JobRole.CHAIN


def step_first_job(kind: StepKind, layer: int) -> str:
    """The first job of a sequencer step (its last: ``STEP_ENDS``)."""
    return {StepKind.KEY_VALUE: f"layer{layer}.key", StepKind.QUERY: f"layer{layer}.query",
            StepKind.ATTENTION_OUTPUT: f"layer{layer}.attention_output", StepKind.FFN: f"layer{layer}.ffn_in",
            StepKind.HEAD: "pooler"}[kind]


STEP_ENDS = ("value", "query", "attention_output", "ffn_out", "classifier")  # a step's last job, by suffix


def trace_signature(layout) -> wiring.Signature:
    """A beat the testbench watches: valid and payload, no ready (it never waits)."""
    return wiring.Signature({"valid": Out(1), "payload": Out(layout)})


def build_problem(plan: AcceleratorPlan, units: EncoderUnits) -> str | None:
    """Why the encoder on chip cannot be built with these widths (one sentence), or None."""
    cfg, a, r = plan.config, units.attention, units.residual
    if not cfg.streamed and plan.resident < plan.ensemble_members:
        return (f"the encoder on chip needs every member resident, not {plan.resident} of "
                f"{plan.ensemble_members}, or its layers streamed (--param-width)")
    pairs = (("PE", cfg.pe, "the head size", a.head_size), ("PE", cfg.pe, "the hidden lanes", r.lanes),
             ("SIMD", cfg.simd, "the hidden lanes", r.lanes), ("SIMD", cfg.simd, "the head size", a.head_size))
    for name, value, other, width in pairs:
        if max(value, width) % min(value, width):
            return (f"{name} {value} and {other} {width} must divide one into the other (the encoder's row "
                    "gearboxes and stores hold the wider beat as one word)")
    return None


def store_shapes(plan: AcceleratorPlan, units: EncoderUnits) -> tuple[RowStoreShape, RowStoreShape]:
    """The codes store (a row of codes per token, L codes a write beat) and the context store (one row,
    a head slice a write beat), both read SIMD codes a beat."""
    cfg, a, r = plan.config, units.attention, units.residual
    return (RowStoreShape(a.tokens, r.hidden, r.code_bits, r.lanes, cfg.simd),
            RowStoreShape(1, a.heads * a.head_size, stored_bits(units.pipeline.context_codes), a.head_size, cfg.simd))


def gearbox_shapes(plan: AcceleratorPlan, units: EncoderUnits) -> dict[str, GearboxShape]:
    """The row gearboxes: K, V and Q codes from PE lanes to head slices; affine rows from PE lanes to L."""
    cfg, a, r = plan.config, units.attention, units.residual
    hidden = a.heads * a.head_size
    return {
        "key": GearboxShape(hidden, stored_bits(a.key), False, cfg.pe, a.head_size),
        "value": GearboxShape(hidden, stored_bits(a.value), False, cfg.pe, a.head_size),
        "query": GearboxShape(hidden, stored_bits(a.query), False, cfg.pe, a.head_size),
        "residual": GearboxShape(r.hidden, plan.value_bits, True, cfg.pe, r.lanes),
    }


def tag_bits(units: EncoderUnits) -> int:
    """A product row's tag for the residual norm: its token, embed, its staircase and its LayerNorm."""
    r = units.residual
    return ((r.tokens - 1).bit_length() + 1 + (r.threshold_words - 1).bit_length()
            + (r.norm_words - 1).bit_length())


class EncoderAccelerator(wiring.Component):
    def __init__(self, plan: AcceleratorPlan, units: EncoderUnits):
        problem = build_problem(plan, units)
        if problem:
            raise ValueError(problem)
        self.plan, self.units = plan, units
        self.layout = EncoderLayout(plan, units)
        cfg, a, r = plan.config, units.attention, units.residual
        self.codes_shape, self.context_shape = store_shapes(plan, units)
        context_bits = self.context_shape.bits
        self.gearboxes = gearbox_shapes(plan, units)
        super().__init__({
            "start": In(1),
            "length": In(range(a.tokens + 1)),
            "busy": Out(1),
            "done": Out(1),
            "cycles": Out(COUNTER_BITS),
            "embed_in": In(stream.Signature(data.ArrayLayout(signed(r.add_bits), r.lanes))),
            "result_out": Out(stream.Signature(range(max(plan.labels, 2)))),
            "trace_codes": Out(trace_signature(data.StructLayout({
                "row": range(max(a.tokens, 2)), "codes": data.ArrayLayout(unsigned(r.code_bits), r.lanes)}))),
            "trace_context": Out(trace_signature(data.ArrayLayout(unsigned(context_bits), a.head_size))),
            "trace_logits": Out(trace_signature(data.ArrayLayout(signed(plan.value_bits), plan.labels))),
            **({"param_in": In(stream.Signature(cfg.param_width))} if cfg.streamed else {}),
        })

    def elaborate(self, platform):
        m = Module()
        plan, units, layout = self.plan, self.units, self.layout
        cfg, a, r = plan.config, units.attention, units.residual
        jobs, members, layers = plan.jobs, plan.ensemble_members, layout.layers
        engine = PEEngine(m, plan)
        pc, buffers, ens = engine.pc, engine.buffers, engine.ensemble

        m.submodules.sequencer = sequencer = EncoderSequencer(members, layers, a.tokens)
        m.submodules.codes_store = codes_store = RowStore(self.codes_shape)
        m.submodules.context_store = context_store = RowStore(self.context_shape)
        gearboxes = {}
        for name, shape in self.gearboxes.items():
            m.submodules[f"{name}_gearbox"] = gearboxes[name] = RowGearbox(shape)
        m.submodules.attention = attention = AttentionPipeline(units.pipeline)
        m.submodules.residual_norm = norm = ResidualNorm(units.norm)
        m.submodules.tag_queue = tags = SyncFIFOBuffered(width=norm.add_row.payload.shape().size, depth=TAG_QUEUE)

        length = Signal(range(1, a.tokens + 1), init=1)
        m.d.comb += [sequencer.length.eq(length), attention.length.eq(length)]

        # ---- the encoder's parameter memories (read only; latency 1, as the units expect) --------
        depths = layout.depths()
        widths = layout.widths()

        def memory(name: str, copy: str = "") -> ParamMemory:
            mem = ParamMemory(widths[name], max(depths[name], 1), encoder_image_name(name))
            m.submodules[f"encoder_{name}{copy}"] = mem
            return mem

        norm_memory, hidden_thresholds = memory("norm"), memory("hidden_thresholds")
        context_thresholds = memory("context_thresholds")
        gain_bits = norm.gain.shape().size
        m.d.comb += [norm_memory.raddr.eq(norm.norm_addr), norm.gain.eq(norm_memory.rdata[:gain_bits]),
                     norm.bias.eq(norm_memory.rdata[gain_bits:]),
                     hidden_thresholds.raddr.eq(norm.threshold_addr), norm.thresholds.eq(hidden_thresholds.rdata),
                     context_thresholds.raddr.eq(attention.threshold_addr),
                     attention.thresholds.eq(context_thresholds.rdata)]

        # ---- per (member, layer) constants, in tables ----------------------------------------------
        constants = [layout.layer(s, layer) for s in range(members) for layer in range(layers)]

        def table(values, index, name):
            return constant_table(m, name, values, index)

        # the attention's constants, held from a layer's first key_value step to its last query's end
        held = {name: Signal(range(max(getattr(c, name) for c in constants) + 1), name=f"attention_{name}")
                for name in ("table_base", "table_last", "prob_step", "context_base")}
        m.d.comb += [attention.table_last.eq(held["table_last"]), attention.prob_step.eq(held["prob_step"]),
                     attention.context_base.eq(held["context_base"])]
        for lane in range(a.lanes):
            table_memory = memory("exp_table", f"_lane{lane}")
            m.d.comb += [table_memory.raddr.eq(held["table_base"] + attention.table_addr[lane]),
                         attention.table_data[lane].eq(table_memory.rdata)]

        # ---- the embedding rows: per member, once its previous member's head is taken --------------
        embedding_member = Signal(range(max(members, 2)))
        embedding_tags, embedding_rows = Signal(), Signal()  # tags still to offer, beats still to take
        tag_token, row_token = Signal(range(a.tokens)), Signal(range(a.tokens))
        row_beat = Signal(range(r.beats))
        embed_norm = table([layout.embedding_norm(s) for s in range(members)], embedding_member, "embedding_norm")
        embed_stairs = table([layout.layer(s, 0).input_staircase for s in range(members)], embedding_member,
                             "embedding_staircase")
        with m.If(embedding_tags):
            m.d.comb += [norm.add_row.valid.eq(1), norm.add_row.payload.token.eq(tag_token),
                         norm.add_row.payload.embed.eq(1), norm.add_row.payload.threshold_base.eq(embed_stairs),
                         norm.add_row.payload.norm_base.eq(embed_norm)]
            with m.If(norm.add_row.ready):
                m.d.sync += tag_token.eq(tag_token + 1)
                with m.If(tag_token == length - 1):
                    m.d.sync += [tag_token.eq(0), embedding_tags.eq(0)]
        with m.Else():
            m.d.comb += [norm.add_row.valid.eq(tags.r_rdy), tags.r_en.eq(norm.add_row.ready),
                         norm.add_row.payload.as_value().eq(tags.r_data)]
        product_rows = gearboxes["residual"].row_out
        with m.If(embedding_rows):
            m.d.comb += [norm.add_in.valid.eq(self.embed_in.valid), self.embed_in.ready.eq(norm.add_in.ready),
                         norm.add_in.payload.eq(self.embed_in.payload)]
            with m.If(self.embed_in.valid & norm.add_in.ready):
                m.d.sync += row_beat.eq(row_beat + 1)
                with m.If(row_beat == r.beats - 1):
                    m.d.sync += [row_beat.eq(0), row_token.eq(row_token + 1)]
                    with m.If(row_token == length - 1):
                        m.d.sync += [row_token.eq(0), embedding_rows.eq(0)]
        with m.Else():
            m.d.comb += [norm.add_in.valid.eq(product_rows.valid), product_rows.ready.eq(norm.add_in.ready)]
            m.d.comb += [norm.add_in.payload[lane].eq(product_rows.payload[lane]) for lane in range(r.lanes)]

        # ---- the stores' writers: the residual norm's codes, the attention's context codes ---------
        m.d.comb += [codes_store.write.valid.eq(norm.codes_out.valid), norm.codes_out.ready.eq(1),
                     codes_store.write.payload.codes.eq(norm.codes_out.payload.codes),
                     codes_store.write.payload.row.eq(norm.codes_out.payload.tag),
                     context_store.write.valid.eq(attention.context_out.valid), attention.context_out.ready.eq(1),
                     context_store.write.payload.codes.eq(attention.context_out.payload),
                     sequencer.codes_written.eq(codes_store.written), sequencer.codes_row.eq(codes_store.written_row),
                     sequencer.context_written.eq(context_store.written),
                     self.trace_codes.valid.eq(codes_store.write.valid),
                     self.trace_codes.payload.row.eq(codes_store.write.payload.row),
                     self.trace_codes.payload.codes.eq(codes_store.write.payload.codes),
                     self.trace_context.valid.eq(context_store.write.valid),
                     self.trace_context.payload.eq(context_store.write.payload.codes)]

        # ---- K and V into the attention units' banks, a head slice a cycle; Q into the pipeline -----
        # Rows arrive in token order, every token of a layer once, so counters name their token and
        # head. The array computes V(t) after K(t) and Q(0) after every K and V, so the last keys and
        # values are in the banks before the first query reads them (the model's key_value steps).
        for name, port in (("key", attention.key_write), ("value", attention.value_write)):
            out = gearboxes[name].row_out
            token, head = Signal(range(a.tokens), name=f"{name}_token"), Signal(range(a.heads), name=f"{name}_head")
            m.d.comb += [out.ready.eq(1), port.en.eq(out.valid), port.token.eq(token), port.head.eq(head),
                         port.codes.eq(out.payload.as_value())]
            with m.If(out.valid):
                m.d.sync += head.eq(head + 1)
                with m.If(head == a.heads - 1):
                    m.d.sync += [head.eq(0), token.eq(Mux(token == length - 1, 0, token + 1))]
            with m.If(self.start & ~self.busy):
                m.d.sync += [token.eq(0), head.eq(0)]
        query = gearboxes["query"].row_out
        m.d.comb += [attention.query_in.valid.eq(query.valid), query.ready.eq(attention.query_in.ready),
                     attention.query_in.payload.eq(query.payload.as_value())]

        # ---- the engine's loads from the stores (read latency 2) -----------------------------------
        row = Signal(range(max(a.tokens, 2)))
        from_context = Signal()
        issued = Signal(range(max(plan.in_folds(j) for j in jobs) + 1))
        issuing = Signal()
        arriving, arriving_word = Signal(2), [Signal.like(issued, name=f"arriving_word{i}") for i in range(2)]
        m.d.comb += [codes_store.read_row.eq(row), codes_store.read_beat.eq(issued),
                     context_store.read_row.eq(0), context_store.read_beat.eq(issued)]
        m.d.sync += [arriving.eq(Cat(issuing, arriving[0])), arriving_word[0].eq(issued),
                     arriving_word[1].eq(arriving_word[0])]
        act = cfg.act_bits

        def widened(store):  # stored codes into the buffers' act_bits a code (zero extended)
            pad = Const(0, act - store.shape.bits)
            return Cat(*(Cat(store.read_data[lane], pad) for lane in range(cfg.simd)))

        m.d.comb += [buffers.load.eq(arriving[1]), buffers.load_word.eq(arriving_word[1]),
                     buffers.load_data.eq(Mux(from_context, widened(context_store), widened(codes_store)))]

        # ---- streamed parameters: the loader fills the layer slots; a unit's steps wait for it -------
        params_ready, release, layer_slot, unit_ends = Const(1), Signal(), Signal(), Signal()
        if cfg.streamed:
            m.submodules.param_loader = loader = ParamLoader(loader_shape(plan))
            wiring.connect(m, wiring.flipped(self.param_in), loader.stream)
            write = loader.write
            for i, name in enumerate(MEMORIES):
                mem = engine.memories[name][0]
                m.d.comb += [mem.we.eq(write.valid & (write.memory == i)),
                             mem.waddr.eq(engine.slot_address(name, write.word, write.slot)),
                             mem.wchunk.eq(write.chunk), mem.wdata.eq(write.data)]
            m.d.comb += loader.release.eq(release)
            params_ready = loader.loaded
        m.d.sync += release.eq(0)  # a pulse as a unit's last step ends (OUTPUT)

        # ---- the controller ------------------------------------------------------------------------
        first = {(kind, layer): jobs.index(next(j for j in jobs if j.name == step_first_job(kind, layer)))
                 for kind in StepKind for layer in range(layers) if kind != StepKind.HEAD or layer == 0}
        step = sequencer.step.payload
        step_index = Signal(range(len(StepKind) * layers))
        m.d.comb += step_index.eq(step.kind.as_value() * layers + Mux(step.kind == StepKind.HEAD, 0, step.layer))
        first_values = [first.get((kind, layer), 0) for kind in StepKind for layer in range(layers)]
        first_pc = table(first_values, step_index, "step_first_pc")
        first_weight = table([engine.weight_bases[i] for i in first_values], step_index, "step_first_weight")
        role = engine.field("role", (job_role(j.name, j.affine) for j in jobs))
        ends_step = engine.field("ends_step", (j.name.split(".")[-1] in STEP_ENDS for j in jobs))

        index = Signal(range(max(members * layers, 2)))
        m.d.comb += index.eq(step.member * layers + step.layer)
        attention_norm = table([c.attention_norm for c in constants], index, "attention_norm")
        ffn_norm = table([c.ffn_norm for c in constants], index, "ffn_norm")
        ffn_in_stairs = table([c.ffn_in_staircase for c in constants], index, "ffn_in_staircase")
        next_stairs = table([layout.layer(s, l + 1).input_staircase if l + 1 < layers else layout.pooler_staircase(s)
                             for s in range(members) for l in range(layers)], index, "next_staircase")
        layer_constant = {name: table([getattr(c, name) for c in constants], index, f"step_{name}") for name in held}
        is_ffn = step.kind == StepKind.FFN
        tag = Signal.like(norm.add_row.payload)
        m.d.comb += [tag.token.eq(step.token), tag.embed.eq(0),
                     tag.norm_base.eq(Mux(is_ffn, ffn_norm, attention_norm)),
                     tag.threshold_base.eq(Mux(is_ffn, next_stairs, ffn_in_stairs)),
                     tags.w_data.eq(tag.as_value())]
        tagged = (step.kind == StepKind.ATTENTION_OUTPUT) | is_ffn

        values = engine.output_unit.values
        codes = Value.cast(engine.output_unit.codes)
        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [length.eq(Mux(self.length == 0, 1, self.length)), self.done.eq(0),
                                 self.cycles.eq(0), embedding_member.eq(0), embedding_tags.eq(1),
                                 embedding_rows.eq(1), tag_token.eq(0), row_token.eq(0), row_beat.eq(0),
                                 engine.in_fold.eq(0), engine.out_fold.eq(0), engine.col_base.eq(0),
                                 engine.plane.eq(0)]
                    m.d.comb += [ens.clear.eq(1), sequencer.start.eq(1)]
                    m.d.sync += layer_slot.eq(0)
                    if cfg.streamed:
                        m.d.comb += loader.start.eq(1)
                    m.next = "STEP"

            with m.State("STEP"):  # the sequencer's next step, its LayerNorm tag queued as it is taken
                m.d.comb += sequencer.step.ready.eq((~tagged | tags.w_rdy) & params_ready)
                with m.If(sequencer.step.valid & sequencer.step.ready):
                    m.d.sync += [pc.eq(first_pc), engine.weight_address.eq(first_weight),
                                 engine.member.eq(step.member), row.eq(step.token),
                                 engine.slot.eq(layer_slot if cfg.streamed else step.member),
                                 from_context.eq(step.kind == StepKind.ATTENTION_OUTPUT), issued.eq(0),
                                 unit_ends.eq((step.kind == StepKind.HEAD)  # a layer's last step, or the head
                                              | (is_ffn & (step.token == length - 1) & (step.layer != layers - 1)))]
                    m.d.comb += tags.w_en.eq(tagged)
                    with m.If((step.kind == StepKind.KEY_VALUE) & (step.token == 0)):
                        m.d.sync += [held[name].eq(layer_constant[name]) for name in held]
                    with m.If((step.kind == StepKind.HEAD) & (step.member != members - 1)):
                        m.d.sync += [embedding_member.eq(step.member + 1), embedding_tags.eq(1),
                                     embedding_rows.eq(1)]
                    m.next = "LOAD"

            with m.State("LOAD"):  # the row's beats read from its store, into the input buffer
                m.d.comb += issuing.eq(issued < engine.in_folds)
                with m.If(issuing):
                    m.d.sync += issued.eq(issued + 1)
                with m.If(arriving[1] & (arriving_word[1] == engine.in_folds - 1)):
                    m.next = "COMPUTE"

            engine.compute_states()

            with m.State("OUTPUT"):
                proceed = Signal()
                for name, job_kind in (("key", JobRole.KEY), ("value", JobRole.VALUE), ("query", JobRole.QUERY)):
                    port, bits = gearboxes[name].row_in, self.gearboxes[name].bits
                    with m.If(role == job_kind):
                        m.d.comb += [port.valid.eq(1), proceed.eq(port.ready)]
                    m.d.comb += [port.payload[p].eq(codes[p * cfg.act_bits:p * cfg.act_bits + bits])
                                 for p in range(cfg.pe)]
                residual = gearboxes["residual"].row_in
                with m.If(role == JobRole.RESIDUAL):
                    m.d.comb += [residual.valid.eq(1), proceed.eq(residual.ready)]
                m.d.comb += [residual.payload[p].eq(values[p]) for p in range(cfg.pe)]
                with m.If(role == JobRole.CHAIN):
                    m.d.comb += [proceed.eq(1), buffers.chain.eq(1)]
                with m.If(role == JobRole.LOGITS):
                    m.d.comb += [proceed.eq(1), ens.accumulate.eq(1), self.trace_logits.valid.eq(1)]
                m.d.comb += [self.trace_logits.payload[c].eq(values[c]) for c in range(plan.labels)]
                with m.If(proceed):
                    m.d.sync += engine.out_fold.eq(engine.out_fold + 1)
                    with m.If(engine.out_fold != engine.out_folds - 1):
                        m.next = "COMPUTE"
                    with m.Else():
                        m.d.sync += engine.out_fold.eq(0)
                        with m.If(ends_step & unit_ends):  # the unit's last word is read: free its slot
                            m.d.sync += [release.eq(1), layer_slot.eq(~layer_slot)]
                        with m.If(~ends_step):  # the step's next job reads the buffers as they are
                            m.d.sync += [pc.eq(pc + 1), engine.weight_address.eq(engine.next_weight_base)]
                            m.next = "COMPUTE"
                        with m.Elif((role == JobRole.LOGITS) & (engine.member == members - 1)):
                            m.next = "SETTLE"
                        with m.Else():
                            m.next = "STEP"

            with m.State("SETTLE"):  # the last member's logits join the scores
                m.next = "ANSWER"

            with m.State("ANSWER"):
                m.d.comb += [self.result_out.valid.eq(1), self.result_out.payload.eq(ens.answer)]
                with m.If(self.result_out.ready):
                    m.d.sync += self.done.eq(1)
                    m.next = "IDLE"

        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        with m.If(self.busy):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        return m


# ---- the resource model ---------------------------------------------------------------------------
# LUTs of the top module without its blocks, fitted on Yosys' synth_xilinx of the encoder top
# (scripts/resource_check.py --fit): per bit of the parameter memories' read data selected by the
# resident slot (param_memory.mux_luts; a LUT a bit with one slot too, the index's out-of-range
# case; none with streamed layers, whose one set of memories is read directly), per PE lane's
# result bit (the output fold's routing to the gearboxes, the chain buffer and the ensemble unit),
# per code bit of an input beat (the row loaded from one store or the other, the activations'
# mask), and the rest (the FSM, the engine's job table, counters, the layer tables).
LUT_COEFFICIENTS = coefficients("encoder_controller")
# The blocks the encoder on chip adds to the matrix-product accelerator's (engine.py's blocks and a
# controller): what issue 15's target "the new blocks' LUTs at most 30% of the design's" counts.
ENCODER_BLOCKS = ("sequencer", "codes_store", "context_store", "key_gearbox", "value_gearbox", "query_gearbox",
                  "residual_gearbox", "attention_pipeline", "attention_scores", "softmax", "attention_context",
                  "context_staircase", "residual_norm", "residual_stream", "layer_norm", "tag_queue", "norm_memory",
                  "hidden_thresholds_memory", "exp_table_memory", "context_thresholds_memory")


def _bits(count: int) -> int:
    """Bits of a signal of ``range(count)``."""
    return (count - 1).bit_length()


def controller_features(plan: AcceleratorPlan, units: EncoderUnits) -> dict[str, float]:
    """The top's LUT structure counts (the coefficients' comment above)."""
    cfg = plan.config
    word_bits = plan.weight_width + plan.threshold_width + plan.affine_width
    selected = 0 if cfg.streamed else word_bits * max(1, mux_luts(plan.resident))  # streamed: one set, no select
    return {"memory_word_bits": selected, "lane_bits": cfg.pe * plan.value_bits,
            "simd_bits": cfg.simd * cfg.act_bits, "control": 1.0}


def controller_flip_flops(plan: AcceleratorPlan, units: EncoderUnits) -> int:
    """The top's registers: the engine's step state and operand registers, the FSM's, the sentence's
    counters, the embedding rows' and the K/V writes' counters, the held layer constants, the loads'
    delay line. As synthesis keeps them: the engine's slot is the member (every member resident), the
    XNOR flag (and for BiT's codes the negation) is constant with one product mode, and of the held
    constants one register per distinct bit pattern over the (member, layer) entries remains."""
    cfg, a, r = plan.config, units.attention, units.residual
    jobs, members = plan.jobs, plan.ensemble_members
    layout = EncoderLayout(plan, units)
    constants = [layout.layer(s, layer) for s in range(members) for layer in range(layout.layers)]
    in_folds = max(plan.in_folds(j) for j in jobs) + 1
    # the PE array's enable and clear, and the negative and XNOR flags where they vary
    flags = 3 if plan.product_modes == ("and",) else 2 if len(plan.product_modes) == 1 else 4
    engine = (_bits(len(jobs)) + _bits(max(members, 2))
              + _bits(max(plan.out_folds(j) for j in jobs) + 1) + _bits(in_folds)
              + _bits(plan.input_buffer_codes + plan.chain_buffer_codes + cfg.simd + 1)
              + _bits(max(cfg.act_bits, 2)) + _bits(plan.weight_depth + 1)
              + cfg.simd + flags + _bits(max(cfg.act_bits, 2)) + _bits(cfg.simd + 1))  # operands, valid, enable
    token = _bits(a.tokens)
    held = {tuple((getattr(c, name) >> bit) & 1 for c in constants)
            for name in ("table_base", "table_last", "prob_step", "context_base")
            for bit in range(_bits(max(getattr(c, name) for c in constants) + 1))}
    held.discard((0,) * len(constants))
    top = (COUNTER_BITS + 1 + _bits(a.tokens + 1) + 3  # cycles, done, length, the FSM's state
           + _bits(max(members, 2)) + 2 + 2 * token + _bits(r.beats)  # the embedding rows
           + len(held) + 2 * (token + _bits(a.heads))  # the attention's constants; K and V's token and head
           + _bits(max(a.tokens, 2)) + 1 + 3 * _bits(in_folds) + 2)  # the load: row, store, issued, delay line
    streamed = 3 if cfg.streamed else 0  # the layer slot, the unit's end, the release pulse
    return engine + top + streamed


def controller_resources(plan: AcceleratorPlan, units: EncoderUnits) -> Resources:
    """The top module's own logic (the controller, the engine's job table and registers, the
    routing between the blocks)."""
    return Resources(lut=linear_cost(LUT_COEFFICIENTS, controller_features(plan, units)),
                     ff=controller_flip_flops(plan, units), carry=COUNTER_BITS // 4)


def tag_queue_resources(units: EncoderUnits) -> Resources:
    """The tag queue: its storage and state (credited_output.fifo_resources), a LUT per state bit for
    its pointers' and levels' increments and compares."""
    fifo = fifo_resources(tag_bits(units), TAG_QUEUE - 3)
    state = fifo.ff - tag_bits(units)  # beside the read register
    return fifo + Resources(lut=state)


def encoder_accelerator_resources(plan: AcceleratorPlan, units: EncoderUnits) -> dict[str, Resources]:
    """Every block's resources, as synth.py names the blocks: the top's controller, the PE engine's
    blocks and memories (engine.py), the sequencer, the row stores and gearboxes, the attention
    pipeline's units and the residual norm's, the tag queue, and the encoder's parameter memories
    (the exponential table once per softmax lane)."""
    a, p, norm = units.attention, units.pipeline, units.norm
    codes_shape, context_shape = store_shapes(plan, units)
    layout = EncoderLayout(plan, units)
    depths, widths = layout.depths(), layout.widths()
    blocks = {
        "controller": controller_resources(plan, units),
        **engine_resources(plan),
        "sequencer": sequencer_resources(plan.ensemble_members, layout.layers, a.tokens),
        "codes_store": row_store_resources(codes_shape),
        "context_store": row_store_resources(context_shape),
        **{f"{name}_gearbox": gearbox_resources(shape) for name, shape in gearbox_shapes(plan, units).items()},
        "attention_pipeline": Resources(),  # its glue: wires, and the units' busy flags joined
        "attention_scores": score_resources(a),
        "softmax": softmax_resources(units.softmax),
        "attention_context": context_resources(a),
        "context_staircase": quantizer_resources(p.staircase),
        "residual_norm": Resources(lut=_bits(norm.residual.beats)),  # the gain/bias address: base + the beat
        "residual_stream": residual_resources(norm.residual),
        "layer_norm": layer_norm_resources(norm.layer_norm),
        "tag_queue": tag_queue_resources(units),
    }
    for name in ENCODER_MEMORIES:
        copies = a.lanes if name == "exp_table" else 1
        blocks[f"{name}_memory"] = memory_resources(max(depths[name], 1), widths[name]) * copies
    if plan.config.streamed:
        blocks["param_loader"] = loader_resources(loader_shape(plan))
    return blocks
