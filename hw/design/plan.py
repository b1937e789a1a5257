"""What the accelerator runs for a model: its matrix jobs in order, their folds and memory addresses,
and the widths every register needs. The RTL, the memory images, the cycle model and the host side
of the testbench all read this one plan.

Every binary matrix product of a member runs on the PE array; the host (for now) computes the
embeddings, LayerNorms, residual adds, the attention (scores, softmax, P.V) and the quantizers that
read a fixed-point hidden state. A member is a sequence of **steps**, each a short chain of
**matrix jobs** over the same input row:

    per layer  qkv        query, key, value       input buffer -> codes out (Q/K/V staircases)
               attn_out   attention output        input buffer -> fixed point out
               ffn        FFN in -> FFN out       input buffer -> GELU codes into the chain buffer
                                                  -> fixed point out
    once       head       pooler -> classifier    [CLS] row -> tanh codes into the chain buffer
                                                  -> fixed-point logits to the ensemble unit and out

Per-token steps repeat for every token of the sentence; the head step runs once. A job folds its
M x K matrix into ceil(M / PE) output folds of ceil(K / SIMD) input folds, each input fold taking
one pass per activation bit plane (one for 1-bit codes, XNOR-popcount).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from bebert.sim.fixed import MULT_BITS
from bebert.sim.gemm import accumulator_bits
from bebert.sim.program import Codes, Linear, Member

from ..resources import block_ram_grid
from .config import ConfigError, HardwareConfig

SHIFT_BITS = 7  # the affine outputs' right shift S (< 128)
MEMORIES = ("weights", "thresholds", "affine")  # each resident member's parameter memories


@dataclass(frozen=True)
class MatrixJob:
    """One binary matrix product of a member, with where its input comes from and its output goes."""

    name: str  # datapath name of the product, e.g. "layer0.query"
    rows: int  # M, output channels
    k: int  # K, input codes
    input_codes: Codes
    output_codes: Codes | None  # codes out through thresholds; None: fixed point out (multiply-shift)
    source: int  # 0: the input buffer, filled from the activation stream; 1: the chain buffer
    to_stream: bool  # results leave on the result stream
    to_chain: bool  # codes go into the chain buffer for the next job of the step
    to_ensemble: bool  # logits go to the ensemble unit

    @property
    def affine(self) -> bool:
        return self.output_codes is None

    @property
    def planes(self) -> int:
        """Passes per input fold: one per bit plane, one for bipolar codes (XNOR)."""
        return 1 if self.input_codes.bipolar else self.input_codes.bits

    @property
    def accumulator_bound(self) -> int:
        return self.k * self.input_codes.largest


@dataclass(frozen=True)
class Step:
    name: str
    jobs: tuple[MatrixJob, ...]
    per_token: bool  # once per token of the sentence, or once per sentence (the head)


@dataclass(frozen=True)
class ParamUnit:
    """The jobs whose parameters load together: a layer's, or the head's (streamed), or a member's."""

    name: str
    jobs: tuple[MatrixJob, ...]


@dataclass(frozen=True)
class Product:
    """One matrix product as the schedule sees it: M x K, and the codes it takes and gives
    (output codes None: fixed point out)."""

    rows: int
    k: int
    input_codes: Codes
    output_codes: Codes | None


LAYER_PRODUCTS = ("query", "key", "value", "attention_output", "ffn_in", "ffn_out")


def schedule(layers: list[dict[str, Product]], pooler: Product, classifier: Product) -> list[Step]:
    """The steps of one member, in the order the controller runs them, from its products: per
    layer a dict over LAYER_PRODUCTS, then the head."""
    def job(name, product: Product, source=0, stream=True, chain=False, ensemble=False):
        return MatrixJob(name, product.rows, product.k, product.input_codes, product.output_codes,
                         source, stream, chain, ensemble)

    steps = []
    for i, layer in enumerate(layers):
        steps.append(Step(f"layer{i}.qkv", tuple(job(f"layer{i}.{n}", layer[n]) for n in ("query", "key", "value")),
                          True))
        steps.append(Step(f"layer{i}.attention_output",
                          (job(f"layer{i}.attention_output", layer["attention_output"]),), True))
        steps.append(Step(f"layer{i}.ffn", (job(f"layer{i}.ffn_in", layer["ffn_in"], stream=False, chain=True),
                                            job(f"layer{i}.ffn_out", layer["ffn_out"], source=1)), True))
    steps.append(Step("head", (job("pooler", pooler, stream=False, chain=True),
                               job("classifier", classifier, source=1, ensemble=True)), False))
    hidden = steps[0].jobs[0].k
    assert all(s.jobs[0].k == hidden for s in steps)
    return steps


def member_steps(member: Member) -> list[Step]:
    """The steps of one compiled member: its products' shapes and the codes between them."""
    def product(linear: Linear, output_codes: Codes | None) -> Product:
        return Product(linear.out_features, linear.k, linear.input_codes, output_codes)

    layers = []
    for layer in member.layers:
        att = layer.attention
        outputs = {"query": att.query_codes, "key": att.key_codes, "value": att.value_codes,
                   "attention_output": None, "ffn_in": layer.ffn_out.input_codes, "ffn_out": None}
        layers.append({name: product(getattr(layer, name), outputs[name]) for name in LAYER_PRODUCTS})
    return schedule(layers, product(member.pooler, member.classifier.input_codes), product(member.classifier, None))


def member_linears(member: Member) -> dict[str, Linear]:
    """Each job's compiled matrix, by job name."""
    out = {"pooler": member.pooler, "classifier": member.classifier}
    for i, layer in enumerate(member.layers):
        for name in LAYER_PRODUCTS:
            out[f"layer{i}.{name}"] = getattr(layer, name)
    return out


def signed_bits(bound: int) -> int:
    """Two's complement width holding every integer in [-bound, bound]."""
    return int(bound).bit_length() + 1


@dataclass(frozen=True)
class ModelShape:
    """What the hardware needs to know of a model, parameters aside: its steps (every job's shape
    and code formats), labels, longest sentence, ensemble, and the widths its constants need.

    From a compiled artifact (``shape_of``), or from dimensions alone (``bebert.hw.design.dims``) for
    estimates and synthesis of models that have no trained artifact here (BERT-base)."""

    name: str
    steps: tuple[Step, ...]
    labels: int
    max_tokens: int
    alphas: tuple[int, ...]  # integer member weights A_m (ALPHA_FRAC fractional bits), one per member
    combine: str  # "logits" or "vote"
    bias_bits: int  # widest affine bias, two's complement
    value_bound: int  # largest magnitude of any affine job's fixed-point output

    @property
    def members(self) -> int:
        return len(self.alphas)


def shape_of(members: list[Member], combine: str, alphas, name: str = "artifact") -> ModelShape:
    """The shape of compiled members (bebert.sim.program), refusing members of different shapes."""
    steps = tuple(member_steps(members[0]))
    for member in members[1:]:
        if tuple(member_steps(member)) != steps:
            raise ConfigError(f"member {member.prefix} differs in shape or code formats from the first; "
                              "the accelerator runs members of one shape.")
    bias_bits, bound = 1, 0
    for member in members:
        linears = member_linears(member)
        for job in (j for step in steps for j in step.jobs if j.affine):
            lin = linears[job.name]
            bias_bits = max(bias_bits, signed_bits(int(np.abs(lin.bias).max())))
            scaled = (job.accumulator_bound * lin.mult + (1 << (lin.shift - 1))) >> lin.shift
            bound = max(bound, int((scaled + np.abs(lin.bias)).max()))
    return ModelShape(name, steps, members[0].classifier.out_features, members[0].max_position,
                      tuple(int(a) for a in alphas), combine, bias_bits, bound)


@dataclass
class AcceleratorPlan:
    """The jobs, folds, addresses and widths of one model on one hardware configuration.

    ``members`` (the compiled members, bebert.sim.program) are there when the plan comes from an
    artifact: the memory images and the testbench's host side need their parameters. A plan of a
    shape alone serves the cycle and resource models and the Verilog."""

    config: HardwareConfig
    shape: ModelShape
    members: list[Member] | None = None

    def __post_init__(self):
        cfg, shape = self.config, self.shape
        self.resident = cfg.resident(shape.members)
        self.steps = list(shape.steps)
        widest = widest_code_bits(self.jobs)
        if widest > cfg.act_bits:
            raise ConfigError(f"the model's {widest}-bit activation codes need --act-bits {widest} or more, "
                              f"not {cfg.act_bits}.")
        largest_m, largest_k = max(j.rows for j in self.jobs), max(j.k for j in self.jobs)
        if cfg.pe > largest_m:
            raise ConfigError(f"--pe {cfg.pe} exceeds the largest matrix's {largest_m} output rows, so lanes "
                              "would idle in every fold.")
        if cfg.simd > largest_k:
            raise ConfigError(f"--simd {cfg.simd} exceeds the longest matrix row of {largest_k} inputs, so "
                              "input bits would idle in every fold.")
        if cfg.pe < self.labels:
            raise ConfigError(f"--pe {cfg.pe} is below the model's {self.labels} labels; the ensemble unit "
                              "takes all logits in one fold.")
        # memory layout: each job's words, one after another, in schedule order: a member's jobs
        # (resident), or a parameter unit's (streamed: each unit from the start of its layer slot).
        # A job's threshold words are ``threshold_fold`` memory words an output fold; ``param_base``
        # counts output folds (the fold's words follow from it, engine.py)
        fold = {"weights": 1, "thresholds": self.threshold_fold, "affine": 1}
        self.weight_base, self.param_base = {}, {}
        self.unit_words: dict[str, dict[str, int]] = {}
        for unit in self.param_units:
            words = dict.fromkeys(MEMORIES, 0)
            for job in unit.jobs:
                self.weight_base[job.name] = words["weights"]
                words["weights"] += self.out_folds(job) * self.in_folds(job)
                kind = "affine" if job.affine else "thresholds"
                self.param_base[job.name] = words[kind] // fold[kind]
                words[kind] += self.out_folds(job) * fold[kind]
            self.unit_words[unit.name] = words
        if cfg.streamed:  # two slots of the largest unit's words each: slot 1 starts where slot 0 ends
            self.slot_depth = {name: max(w[name] for w in self.unit_words.values()) for name in MEMORIES}
            depths = {name: 2 * self.slot_depth[name] for name in MEMORIES}
        else:
            self.slot_depth, depths = None, self.unit_words[self.param_units[0].name]
        self.weight_depth, self.threshold_depth, self.affine_depth = (depths[name] for name in MEMORIES)

    @cached_property
    def threshold_fold(self) -> int:
        """Memory words a threshold word is read in: 2^f sub-words of ``threshold_word_width`` bits,
        read one a cycle as the fold computes (so never more than the fewest passes of an output
        fold that any threshold job makes, and the output unit sees the whole word at the fold's end,
        engine.py). The fold is the one whose memory takes the fewest block RAM tiles, then the
        fewest LUTs, then the smallest: a wide word of few words (PE x levels x 2 x T bits, often
        ten thousand and more, a few hundred words a layer) fills its tiles' width and wastes their
        depth; folded, the same bits fill both."""
        passes = [self.out_passes(j) for j in self.jobs if not j.affine]
        if not passes:
            return 1
        folds_of_unit = [sum(self.out_folds(j) for j in u.jobs if not j.affine) for u in self.param_units]
        sets = 2 if self.config.streamed else 1

        def cost(fold: int) -> tuple[float, float, int]:
            width = math.ceil(self.threshold_width / fold)
            depth = max(1, sets * max(folds_of_unit) * fold)
            _, tiles = block_ram_grid(depth, width, self.write_chunk(width))
            return tiles.bram36 + tiles.bram18 / 2, tiles.lut, fold

        folds = [1 << f for f in range(min(passes).bit_length()) if 1 << f <= self.threshold_width]
        return min(folds, key=cost)

    def out_passes(self, job: MatrixJob) -> int:
        """Cycles the PE array computes one output fold of ``job`` in: a pass per input fold and plane."""
        return self.in_folds(job) * job.planes

    def write_chunk(self, width: int) -> int | None:
        """Bits a write of a memory ``width`` bits wide takes: a beat of the parameter stream (streamed
        parameters, a word wider than a beat), or a whole word."""
        cfg = self.config
        return cfg.param_width if cfg.streamed and cfg.param_width < width else None

    # ---- shapes ---------------------------------------------------------------------------------
    @cached_property
    def jobs(self) -> list[MatrixJob]:
        return [job for step in self.steps for job in step.jobs]

    @cached_property
    def param_units(self) -> tuple[ParamUnit, ...]:
        """The parameters of one member as they are laid out: streamed, one unit per layer, the head
        in the last layer's (so that the next member's first layer loads while the last one runs),
        in schedule order, each filling a layer slot; resident, one unit of every job."""
        if not self.config.streamed:
            return (ParamUnit("member", tuple(self.jobs)),)
        units = {}
        for step in self.steps:
            name = step.name.split(".")[0] if step.per_token else next(reversed(units))  # the head: the last layer's
            units[name] = units.get(name, ()) + step.jobs
        last = next(reversed(units))
        return tuple(ParamUnit(f"{name}+head" if name == last else name, jobs) for name, jobs in units.items())

    def resident_twin(self) -> AcceleratorPlan:
        """This plan with every member resident (the same plan if they are): what the matrix-product
        accelerator's figures of a streamed design are stated on."""
        if not self.config.streamed:
            return self
        return AcceleratorPlan(replace(self.config, param_width=None), self.shape, self.members)

    @property
    def memory_sets(self) -> int:
        """Sets of the three parameter memories: one per resident member, or one of two layer slots."""
        return 1 if self.config.streamed else self.resident

    def unit_beats(self, unit: str) -> int:
        """Beats of the parameter stream that fill one unit's slot: each of its words in chunks of
        ``param_width`` bits, weights, then thresholds, then affine words (generator/param_stream.py)."""
        width = self.config.param_width
        return sum(words * math.ceil(self.memory_shapes[name][1] / width)
                   for name, words in self.unit_words[unit].items())

    @property
    def sentence_beats(self) -> int:
        """Beats of the parameter stream one sentence takes: every member's units (streamed)."""
        return self.ensemble_members * sum(self.unit_beats(u.name) for u in self.param_units)

    @property
    def labels(self) -> int:
        return self.shape.labels

    @property
    def max_tokens(self) -> int:
        return self.shape.max_tokens

    @property
    def ensemble_members(self) -> int:
        return self.shape.members

    @property
    def combine(self) -> str:
        return self.shape.combine

    @property
    def alphas(self) -> tuple[int, ...]:
        return self.shape.alphas

    def out_folds(self, job: MatrixJob) -> int:
        return math.ceil(job.rows / self.config.pe)

    def in_folds(self, job: MatrixJob) -> int:
        return math.ceil(job.k / self.config.simd)

    # ---- widths ---------------------------------------------------------------------------------
    @cached_property
    def acc_bits(self) -> int:
        """Accumulator width: the widest job's exact range (bebert.sim.gemm.accumulator_bits)."""
        return max(accumulator_bits(j.k, j.input_codes.bits, j.input_codes.signed) for j in self.jobs)

    @cached_property
    def threshold_bits(self) -> int:
        """Thresholds hold every accumulator value and one past each end ("never")."""
        return signed_bits(max(j.accumulator_bound for j in self.jobs) + 1)

    @property
    def levels(self) -> int:
        """Threshold levels per lane: 2^b - 1 for b-bit codes; one for 1-bit codes (bipolar or not)."""
        return 1 if self.config.act_bits == 1 else 2**self.config.act_bits - 1

    @property
    def bias_bits(self) -> int:
        return self.shape.bias_bits

    @property
    def value_bits(self) -> int:
        """Width of one result lane: every fixed-point output of every member, and every code."""
        return signed_bits(max(2**self.config.act_bits, 2, self.shape.value_bound))  # codes need the sign

    @cached_property
    def product_modes(self) -> tuple[str, ...]:
        """The PE array's product modes the jobs use: AND (bit planes) and XNOR (bipolar codes)."""
        return tuple(mode for mode, used in (("and", any(not j.input_codes.bipolar for j in self.jobs)),
                                              ("xnor", any(j.input_codes.bipolar for j in self.jobs))) if used)

    @property
    def weight_width(self) -> int:
        return self.config.pe * self.config.simd

    @property
    def threshold_width(self) -> int:
        return self.config.pe * self.levels * 2 * self.threshold_bits

    @property
    def threshold_word_width(self) -> int:
        """Bits of one threshold memory word: a threshold word's ``threshold_fold``-th part."""
        return math.ceil(self.threshold_width / self.threshold_fold)

    @property
    def affine_lane_bits(self) -> int:
        return MULT_BITS + self.bias_bits

    @property
    def affine_width(self) -> int:
        return SHIFT_BITS + self.config.pe * self.affine_lane_bits

    @property
    def memory_shapes(self) -> dict[str, tuple[int, int]]:
        """(words, bits per word) of each parameter memory of one set (``memory_sets``): a resident
        member's, or the two layer slots of streamed parameters."""
        return {"weights": (self.weight_depth, self.weight_width),
                "thresholds": (self.threshold_depth, self.threshold_word_width),
                "affine": (self.affine_depth, self.affine_width)}

    @property
    def load_width(self) -> int:
        """The parameter load stream carries one word of any of the three memories per beat."""
        return max(width for _, width in self.memory_shapes.values())

    @cached_property
    def input_buffer_codes(self) -> int:
        """Codes the input buffer holds: the longest row a step loads, in whole SIMD words."""
        return max(self.in_folds(j) for j in self.jobs if j.source == 0) * self.config.simd

    @cached_property
    def chain_buffer_codes(self) -> int:
        """Codes the chain buffer holds: written PE codes at a time, read SIMD codes at a time."""
        chained = [j for j in self.jobs if j.to_chain] + [j for j in self.jobs if j.source == 1]
        need = max(max(self.out_folds(j) * self.config.pe for j in chained if j.to_chain),
                   max(self.in_folds(j) * self.config.simd for j in chained if j.source == 1))
        word = math.lcm(self.config.pe, self.config.simd)
        return math.ceil(need / word) * word

    @cached_property
    def score_bits(self) -> int:
        """Ensemble scores: sum_m A_m * logit (logits) or sum_m A_m (vote)."""
        total = sum(self.alphas)
        return signed_bits(total * (2 ** (self.value_bits - 1) if self.combine == "logits" else 1))

    @cached_property
    def _linears(self) -> list[dict[str, Linear]]:
        if self.members is None:
            raise ConfigError(f"the plan of {self.shape.name} has no parameters: it comes from dimensions, "
                              "not from an artifact.")
        return [member_linears(member) for member in self.members]

    def linear(self, member_index: int, job: MatrixJob) -> Linear:
        """Member ``member_index``'s compiled matrix of ``job``."""
        return self._linears[member_index][job.name]


def widest_code_bits(jobs: list[MatrixJob]) -> int:
    """The widest activation code the jobs take in or give out (thresholds and buffers need it)."""
    return max([j.input_codes.bits for j in jobs] + [j.output_codes.bits for j in jobs if not j.affine])


def model_act_bits(simulation) -> int:
    """The model's widest activation code (the default --act-bits)."""
    return widest_code_bits([job for step in member_steps(simulation.members[0]) for job in step.jobs])


def plan_for(simulation, config: HardwareConfig) -> AcceleratorPlan:
    """The plan of a compiled artifact (bebert.sim.ensemble.Simulation) on a configuration."""
    if simulation.regression:
        raise ConfigError(f"{simulation.path}: the accelerator's ensemble unit joins classifiers; a regression "
                          "model (STS-B) runs on the simulator only.")
    if simulation.combine not in ("logits", "vote"):
        raise ConfigError(f"{simulation.path}: members are joined by 'vote' or 'logits', not {simulation.combine!r}.")
    shape = shape_of(simulation.members, simulation.combine, simulation.alphas, name=str(simulation.path))
    return AcceleratorPlan(config, shape, simulation.members)
