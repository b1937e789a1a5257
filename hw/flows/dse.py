"""The design-space exploration: ``bebert-hw dse``.

A sweep is the cross product of PE, SIMD, resident members, activation bits, member mapping and
the encoder's lanes over one or more models. Every point gets the cycle model's latency and
throughput at a stated clock, the resource model's LUTs, flip-flops, block RAM and DSPs by block,
and, with synthesis on, the same resources from real synthesis (synth.py: Yosys, cached, in
parallel on local cores or a Dask cluster). The sweep writes ``dse.csv`` and the plots (plots.py).

Scope: by default every point is the encoder on chip (encoder_accelerator.py), and its figures are
whole inferences: cycles from the schedule's event model (schedule.inference_cycles, equal to the
RTL's counter), resources from ``encoder_accelerator_resources``, its units sized for sentences of
up to ``max_tokens`` tokens with ``attention_lanes`` and ``hidden_lanes`` lanes. The encoder holds
every member resident (the resident key does not vary its points), or with ``param_width`` W > 0
streams its layers through a W-bit stream into two layer slots (gen --param-width). Every row
also gives ``products_cycles``, the matrix products alone (accelerator.run_cycles). With
``encoder: false`` (``--products-only``) the sweep is the matrix-product accelerator's, whose
host computes the attention and the LayerNorms: products only, in cycles and resources.

Models: ``builtin`` (the shipped 2-member BEBERT 1-1-4 on SST-2, from its artifact, whose
constants size its encoder blocks), and from dimensions alone (dims.py) ``minilm``, ``bert-base``
and ``tiny`` (the tests' tiny BERT) in a setting (``1-1-4`` or ``1-1-1``) with a number of
ensemble members; their encoder blocks are sized by the setting's code formats and the built-in
model's fixed-point constants (encoder_units.nominal_constants).

Mappings: ``multiplexed`` runs every member one after another on one PE array (the accelerator as
built); ``replicated`` gives each member its own copy of the one-member accelerator, all running
at once: members times the resources, one member's latency, and the host joins the logits.

Devices (hw/design/devices.py): every row says, per target device (``--device``; default all of
them), whether the point fits its LUTs, flip-flops, block RAM and multipliers (synthesized figures
where the point was synthesized), which budget stops it if not, and, if it fits, its sentences per
second at the device's clock and what bounds them: compute, or the board's external memory feeding
the embedding rows and streamed layers (whole inferences only; the products alone exchange every
layer's rows with the host, which is not modelled as memory traffic). A streamed point's cycles are
the device's own: its parameter stream runs at the board's bandwidth (``<device>_cycles``).

Conventions: a binary MAC is a 1-bit weight times one bit plane of an activation (a b-bit code
costs b of them); one binary MAC is 2 binary operations (XNOR/AND and the popcount's add), as
FINN counts. Peak binary GOPS is 2 x PE x SIMD x clock (x copies, replicated).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import os
import time
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

import yaml

from bebert.errors import BebertError

from ..accelerator import run_cycles
from ..design.config import PARAM_WIDTHS, ConfigError, HardwareConfig
from ..design.devices import DEVICES, Device, assess
from ..design.dims import MODELS, SETTINGS, shape_from_dims
from ..design.plan import AcceleratorPlan, ModelShape
from ..encoder_units import EncoderUnits, encoder_units, nominal_constants
from ..resources import RESOURCE_FIELDS, Resources, total

TOP = "bebert_accelerator"
MAPPINGS = ("multiplexed", "replicated")
SWEEP_KEYS = ("models", "pe", "simd", "resident", "act_bits", "mapping", "tokens", "clock_mhz", "synth_max_mbit",
              "encoder", "max_tokens", "attention_lanes", "hidden_lanes", "param_width")
DEFAULT_SWEEP = {  # 72 points: 4 models x 3 PE x 3 SIMD, multiplexed and replicated (the encoder holds every member)
    "models": ["builtin", "minilm:1-1-4:1", "minilm:1-1-4:4", "bert-base:1-1-4:2"],
    "pe": [8, 16, 64],
    "simd": [32, 64, 128],
    "resident": [1, 2, 4],  # products only: members resident (the encoder holds all of them)
    "act_bits": ["model"],  # "model": each model's widest codes
    "mapping": ["multiplexed", "replicated"],
    "tokens": 32,
    "clock_mhz": None,  # None: the clock measured by place and route (results/timing.yaml), else 100 MHz
    "synth_max_mbit": 80,  # designs with more parameter memory on chip get the resource model only
    "encoder": True,  # the encoder on chip (whole inferences); false: the matrix products alone
    "max_tokens": 128,  # the encoder's longest sentence (gen --max-tokens)
    "attention_lanes": [4],  # keys a cycle in the attention units and the softmax (gen --attention-lanes)
    "hidden_lanes": [8],  # hidden values a cycle in the residual stream and the LayerNorm (gen --hidden-lanes)
    "param_width": [0],  # 0: every member resident; W: the encoder's layers streamed, W bits a beat (gen --param-width)
}


class SweepError(BebertError):
    """A sweep specification that cannot run (one sentence, names the bad entry)."""


# ---- models ---------------------------------------------------------------------------------------
def parse_model(spec: str) -> tuple[str, str, int]:
    """``builtin`` or ``<minilm|bert-base>:<setting>:<members>`` -> (name, setting, members)."""
    if spec == "builtin":
        return "builtin", "1-1-4", 2
    parts = spec.split(":")
    if len(parts) != 3 or parts[0] not in MODELS or parts[1] not in SETTINGS or not parts[2].isdigit() \
            or int(parts[2]) < 1:
        raise SweepError(f"Model {spec!r} is not 'builtin' or <{'|'.join(MODELS)}>:<{'|'.join(SETTINGS)}>:<members>, "
                         "for example bert-base:1-1-4:2.")
    return parts[0], parts[1], int(parts[2])


@lru_cache(maxsize=None)
def _builtin_plan() -> AcceleratorPlan:
    from bebert.builtin import BUILTIN_DIR
    from bebert.hw.design.plan import plan_for
    from bebert.sim.ensemble import load_simulation

    return plan_for(load_simulation(BUILTIN_DIR), HardwareConfig(8, 8, None, 4))


@lru_cache(maxsize=None)
def model_shape(spec: str, members: int | None = None) -> ModelShape:
    """The shape of a model spec; ``members`` overrides its ensemble size (a replicated copy runs one)."""
    name, setting, count = parse_model(spec)
    if name == "builtin":
        shape = _builtin_plan().shape
        if members is not None:
            shape = replace(shape, alphas=shape.alphas[:members])
        return replace(shape, name="builtin")
    return shape_from_dims(spec, MODELS[name], setting, members or count)


def model_members(spec: str, members: int | None = None) -> list | None:
    """The compiled members of a model spec with an artifact (the built-in), else None."""
    if parse_model(spec)[0] != "builtin":
        return None
    return _builtin_plan().members[:members]


# ---- points ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DesignPoint:
    model: str
    pe: int
    simd: int
    resident: int
    act_bits: int
    mapping: str
    encoder: bool = False  # the encoder on chip, its units built for ``max_tokens`` with these lanes
    max_tokens: int = 0
    attention_lanes: int = 0
    hidden_lanes: int = 0
    param_width: int = 0  # 0: resident parameters; W: the encoder's layers streamed through a W-bit stream

    @property
    def copies(self) -> int:
        """PE arrays on chip: one, or one per member (replicated)."""
        return parse_model(self.model)[2] if self.mapping == "replicated" else 1

    def plan(self) -> AcceleratorPlan:
        """The plan of the design that is built (for ``replicated``, one copy: a one-member accelerator);
        with the built-in model's compiled members, which size its encoder blocks."""
        width = self.param_width or None
        if self.mapping == "replicated":
            return AcceleratorPlan(HardwareConfig(self.pe, self.simd, None if width else 1, self.act_bits, width),
                                   model_shape(self.model, 1), model_members(self.model, 1))
        return AcceleratorPlan(HardwareConfig(self.pe, self.simd, None if width else self.resident, self.act_bits,
                                              width), model_shape(self.model), model_members(self.model))

    def units(self, plan: AcceleratorPlan | None = None) -> EncoderUnits | None:
        """The encoder's units (None: the matrix products alone): sized by the artifact's constants, or
        for a shape from dimensions by nominal ones (encoder_units.nominal_constants)."""
        if not self.encoder:
            return None
        plan = plan or self.plan()
        name = parse_model(self.model)[0]
        constants = None if plan.members else nominal_constants(plan, MODELS[name]["num_heads"])
        return encoder_units(plan, self.max_tokens, self.attention_lanes, self.hidden_lanes, constants)

    def problem(self) -> str | None:
        """Why this point cannot be built (the plan's or the encoder's sentence), or None."""
        from ..encoder_accelerator import build_problem

        if self.param_width and not self.encoder:
            return "streamed parameters (param_width) are the encoder on chip's; the products alone load whole members."
        try:
            plan = self.plan()
            if self.encoder and not 1 <= self.max_tokens <= plan.max_tokens:
                return (f"the encoder's longest sentence of {self.max_tokens} tokens is outside the model's 1 to "
                        f"{plan.max_tokens} (its position table).")
            units = self.units(plan)
        except (ConfigError, ValueError) as exc:
            return str(exc)
        problem = units and build_problem(plan, units)
        return f"the encoder on chip: {problem}." if problem else None


def load_sweep(path: Path | None, overrides: dict) -> dict:
    """The sweep: the default, a YAML file's keys over it, then the command line's."""
    sweep = dict(DEFAULT_SWEEP)
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise SweepError(f"Cannot read the sweep file {path}: {exc.strerror}.") from None
        except yaml.YAMLError as exc:
            raise SweepError(f"The sweep file {path} is not valid YAML ({str(exc).splitlines()[0]}).") from None
        if not isinstance(loaded, dict):
            raise SweepError(f"The sweep file {path} must hold a mapping of {', '.join(SWEEP_KEYS)}.")
        unknown = sorted(set(loaded) - set(SWEEP_KEYS))
        if unknown:
            raise SweepError(f"Unknown sweep key {unknown[0]!r} in {path}; the keys are {', '.join(SWEEP_KEYS)}.")
        sweep.update(loaded)
    sweep.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("models", "pe", "simd", "resident", "act_bits", "mapping", "attention_lanes", "hidden_lanes",
                "param_width"):
        value = sweep[key]
        if not isinstance(value, list) or not value:
            raise SweepError(f"Sweep key {key!r} must be a non-empty list, not {value!r}.")
    for key in ("pe", "simd", "resident", "act_bits", "attention_lanes", "hidden_lanes"):
        for value in sweep[key]:
            if key == "act_bits" and value == "model":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SweepError(f"Sweep key {key!r} holds {value!r}; it takes positive whole numbers"
                                 + (" or 'model'." if key == "act_bits" else "."))
    for width in sweep["param_width"]:
        if width != 0 and width not in PARAM_WIDTHS:
            raise SweepError(f"Sweep key 'param_width' holds {width!r}; it takes 0 (resident) or a power of two "
                             f"from {PARAM_WIDTHS[0]} to {PARAM_WIDTHS[-1]}.")
    for mapping in sweep["mapping"]:
        if mapping not in MAPPINGS:
            raise SweepError(f"Unknown mapping {mapping!r}; choose from {', '.join(MAPPINGS)}.")
    for model in sweep["models"]:
        parse_model(str(model))
    if not isinstance(sweep["tokens"], int) or sweep["tokens"] < 1:
        raise SweepError(f"Sweep key 'tokens' must be a positive sentence length, not {sweep['tokens']!r}.")
    if not isinstance(sweep["encoder"], bool):
        raise SweepError(f"Sweep key 'encoder' must be true or false, not {sweep['encoder']!r}.")
    if sweep["encoder"]:
        longest = sweep["max_tokens"]
        if not isinstance(longest, int) or isinstance(longest, bool) or longest < sweep["tokens"]:
            raise SweepError(f"Sweep key 'max_tokens' (the encoder's longest sentence) must be a whole number of at "
                             f"least the {sweep['tokens']} tokens the figures assume, not {longest!r}.")
    limit = sweep["synth_max_mbit"]
    if not isinstance(limit, (int, float)) or isinstance(limit, bool) or limit < 0:
        raise SweepError(f"Sweep key 'synth_max_mbit' must be a non-negative number of Mbit, not {limit!r}.")
    clock = sweep["clock_mhz"]
    if clock is not None and (not isinstance(clock, (int, float)) or clock <= 0):
        raise SweepError(f"Sweep key 'clock_mhz' must be a positive frequency, not {clock!r}.")
    return sweep


def sweep_points(sweep: dict) -> tuple[list[DesignPoint], list[tuple[DesignPoint, str]]]:
    """The valid points of a sweep, and the skipped ones with the reason (the plan's or the
    encoder's sentence). Replicated points do not vary the resident count (every copy holds its one
    member), nor do the encoder's (it holds every member); the products alone do not vary the lanes."""
    points, skipped, seen = [], [], set()
    encoder = sweep["encoder"]
    lanes = itertools.product(sweep["attention_lanes"], sweep["hidden_lanes"]) if encoder else [(0, 0)]
    for model, pe, simd, resident, bits, mapping, (attention, hidden), width in itertools.product(
            sweep["models"], sweep["pe"], sweep["simd"], sweep["resident"], sweep["act_bits"], sweep["mapping"],
            list(lanes), sweep["param_width"]):
        members = parse_model(str(model))[2]
        if bits == "model":
            bits = SETTINGS[parse_model(str(model))[1]].bits
        if width and encoder:
            resident = 0  # streamed: no member resident
        elif mapping == "replicated":
            resident = 1
        elif encoder:
            resident = members
        point = DesignPoint(str(model), pe, simd, resident, bits, mapping, encoder,
                            sweep["max_tokens"] if encoder else 0, attention, hidden, width)
        if point in seen:
            continue
        seen.add(point)
        problem = point.problem()
        if problem:
            skipped.append((point, problem))
            continue
        points.append(point)
    if not points:
        reason = skipped[0][1] if skipped else "it is empty"
        raise SweepError(f"The sweep has no valid design point: {reason}")
    return points, skipped


# ---- Verilog, generated in parallel and kept ------------------------------------------------------------
# The modules the Verilog is generated from; in the blocks' files, only the part above the resource
# model counts, so refitting a model or its coefficients (calibration.yaml) keeps generated designs.
RTL_MODULES = ("design/config.py", "design/plan.py", "design/dims.py", "generator/gen.py",
               "generator/platform.py", "generator/images.py", "generator/encoder_images.py", "accelerator.py",
               "engine.py", "encoder_accelerator.py", "encoder_units.py") + tuple(sorted(f"blocks/{path.name}"
                                                  for path in (Path(__file__).parents[1] / "blocks").glob("*.py")))
RESOURCE_MODEL_MARK = "# ---- the resource model"


def source_digest() -> str:
    """A digest of the sources the Verilog is generated from: a design is reused only while they
    are unchanged."""
    digest = hashlib.sha256()
    for name in RTL_MODULES:
        digest.update((Path(__file__).parents[1] / name).read_text().split(RESOURCE_MODEL_MARK)[0].encode())
    return digest.hexdigest()[:16]


def verilog_path(point: DesignPoint, digest: str) -> Path:
    from .synth import cache_dir

    plan = point.plan()
    units = point.units(plan)
    constants = ()
    if units is not None:  # the layers' constants the encoder top holds in tables (the artifact's)
        from ..generator.encoder_images import EncoderLayout

        layout = EncoderLayout(plan, units)
        constants = tuple(layout.layer(slot, layer) for slot in range(plan.ensemble_members)
                          for layer in range(layout.layers))
    key = hashlib.sha256(repr((plan.config, plan.shape, units, constants, digest)).encode()).hexdigest()[:24]
    return cache_dir() / "verilog" / f"{key}.v"


def generate_verilog(job: tuple[DesignPoint, str]) -> str:
    """Generate one point's Verilog into the cache (a worker's job); returns its path."""
    from ..generator.gen import verilog

    point, digest = job
    path = verilog_path(point, digest)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        plan = point.plan()
        staging.write_text(verilog(plan, point.units(plan)))
        os.replace(staging, path)
    return str(path)


# ---- evaluation -------------------------------------------------------------------------------------
def binary_macs(plan: AcceleratorPlan, tokens: int) -> int:
    """Binary MACs of one inference of all members (the conventions in the module doc)."""
    per_member = sum(j.rows * j.k * j.planes * (tokens if s.per_token else 1) for s in plan.steps for j in s.jobs)
    return per_member * plan.ensemble_members


LAYER_KINDS = ("qkv", "attention_output", "ffn", "head")  # the cycles' split, by the PE array's steps


def point_cycles(point: DesignPoint, tokens: int, plan: AcceleratorPlan | None = None,
                 beat_interval: float = 1) -> dict:
    """One inference's cycles at a point: ``total`` (whole inferences with the encoder on chip, else
    the products alone), ``products`` (the products alone, every member resident), the PE array's
    busy cycles by layer type, its waits for the encoder's units and streamed layers (a beat every
    ``beat_interval`` cycles; ``wait_causes``: by what it waited for), and the parameter load
    (products alone, streamed members)."""
    plan = plan or point.plan()
    products = run_cycles(plan.resident_twin(), tokens)
    units = point.units(plan)
    by_kind = dict.fromkeys(LAYER_KINDS, 0)
    if units is None:
        for step, count in products.by_step.items():
            by_kind[step.split(".")[-1]] += count
        return {"total": products.total, "products": products.total, "by_kind": by_kind, "waits": 0,
                "wait_causes": {}, "parameter_load": products.parameter_load}
    from ..schedule import inference_cycles

    encoder = inference_cycles(plan, units, tokens, beat_interval=beat_interval)
    for kind, count in encoder.pe_busy.items():  # key_value and query: the qkv products
        by_kind["qkv" if kind in ("key_value", "query") else kind] += count
    return {"total": encoder.total, "products": products.total, "by_kind": by_kind,
            "waits": sum(encoder.pe_waits.values()), "wait_causes": dict(encoder.pe_waits), "parameter_load": 0}


def point_resources(point: DesignPoint, plan: AcceleratorPlan | None = None) -> dict:
    """The resource model's blocks at a point (one copy): the encoder on chip's, or the products'."""
    from ..accelerator import accelerator_resources
    from ..encoder_accelerator import encoder_accelerator_resources

    plan = plan or point.plan()
    units = point.units(plan)
    return accelerator_resources(plan) if units is None else encoder_accelerator_resources(plan, units)


def encoder_share(blocks: dict, field: str = "lut") -> float:
    """The encoder's new blocks' share of a design's resources (0 for the products alone)."""
    from ..encoder_accelerator import ENCODER_BLOCKS

    whole = sum(getattr(r, field) for r in blocks.values())
    return sum(getattr(r, field) for name, r in blocks.items() if name in ENCODER_BLOCKS) / whole if whole else 0.0


def evaluate(point: DesignPoint, tokens: int, clock_mhz: float) -> dict:
    """The model's figures of one point (no synthesis)."""
    plan = point.plan()
    members = parse_model(point.model)[2]
    cycles = point_cycles(point, tokens, plan)
    # replicated: every copy runs its one member at once, so a sentence takes one member's cycles
    latency_s = cycles["total"] / (clock_mhz * 1e6)
    macs = binary_macs(plan, tokens) * (members if point.mapping == "replicated" else 1)
    one_copy = point_resources(point, plan)
    blocks = {name: res * point.copies for name, res in one_copy.items()}
    model = total(blocks)
    row = {**asdict(point), "members": members, "copies": point.copies, "tokens": tokens, "clock_mhz": clock_mhz,
           "cycles": cycles["total"], "products_cycles": cycles["products"],
           "parameter_load_cycles": cycles["parameter_load"],
           **{f"cycles_{kind}": count for kind, count in cycles["by_kind"].items()}, "cycles_waits": cycles["waits"],
           "latency_ms": 1e3 * latency_s, "sentences_per_s": 1.0 / latency_s,
           "binary_gops": 2 * macs / latency_s / 1e9,
           "peak_binary_gops": 2 * point.pe * point.simd * point.copies * clock_mhz * 1e6 / 1e9,
           "memory_bits": memory_bits(point), "traffic_bits": traffic_bits(point, tokens, plan),
           "param_stream_bits": point.copies * stream_bits(plan)}
    row.update({f"model_{f}": round(getattr(model, f)) for f in RESOURCE_FIELDS})
    row["model_encoder_lut_share"] = round(encoder_share(one_copy), 4)
    row.update({f"model_{name}_lut": round(res.lut) for name, res in blocks.items()})
    return row


def traffic_bits(point: DesignPoint, tokens: int, plan: AcceleratorPlan) -> int | None:
    """External-memory bits one inference needs (every copy): with the encoder on chip, the embedding
    rows the host streams, as the port carries them (every member, every token, whole beats), and the
    parameter stream's beats of streamed layers; None for the products alone (their rows go to and
    from the host after every step)."""
    if not point.encoder:
        return None
    residual = point.units(plan).residual
    embeddings = plan.ensemble_members * tokens * residual.beats * residual.lanes * residual.add_bits
    return point.copies * (embeddings + stream_bits(plan))


def stream_bits(plan: AcceleratorPlan) -> int:
    """Bits of the parameter stream one inference of one copy takes (0: resident parameters)."""
    if not plan.config.streamed:
        return 0
    return plan.config.param_width * plan.sentence_beats


def beat_interval(point: DesignPoint, target: Device, clock_mhz: float) -> float:
    """Cycles between the parameter stream's beats when the board's memory feeds every copy's stream
    at once at its bandwidth (at most a beat a cycle)."""
    bits_per_cycle = target.bandwidth_gb_s * 8e9 / (clock_mhz * 1e6) / point.copies
    return max(1.0, point.param_width / bits_per_cycle)


def device_clock(target: Device, clock: tuple[float, str]) -> tuple[float, str]:
    """The clock a device's figures assume: the sweep's when given, else the device's own."""
    if clock[1] == "given" or target.clock_mhz is None:
        return clock
    return target.clock_mhz, target.clock_note


def device_columns(row: dict, devices: list[Device], clock: tuple[float, str],
                   point: DesignPoint | None = None) -> dict:
    """A row's verdict on each device (the synthesized resources where the point was synthesized).
    A point whose layers stream is costed again per device: its parameter stream runs at the
    board's bandwidth (``beat_interval``), so its cycles are the device's own (``<device>_cycles``)."""
    source = "synth" if row.get("synthesized") else "model"
    resources = Resources(*(row[f"{source}_{f}"] for f in RESOURCE_FIELDS))
    columns = {}
    for target in devices:
        clock_mhz, _ = device_clock(target, clock)
        key = target.column
        cycles = row["cycles"]
        if point is not None and point.param_width:
            cycles = point_cycles(point, row["tokens"], beat_interval=beat_interval(point, target, clock_mhz))["total"]
            columns[f"{key}_cycles"] = cycles
        verdict = assess(target, resources, cycles, clock_mhz, row["traffic_bits"])
        columns.update({f"{key}_fits": verdict.fits, f"{key}_bound": verdict.bound, f"{key}_clock_mhz": clock_mhz,
                        f"{key}_sentences_per_s": round(verdict.sentences_per_s, 3),
                        f"{key}_bandwidth_share": None if verdict.bandwidth_share is None
                        else round(verdict.bandwidth_share, 5)})
        columns.update({f"{key}_{f}_used": round(verdict.used[f]) for f in verdict.used})
        columns.update({f"{key}_{f}_share": round(verdict.share[f], 4) for f in verdict.share})
    return columns


@dataclass
class SweepResult:
    rows: list[dict]
    skipped: list[tuple[DesignPoint, str]]
    seconds: float
    synthesis_seconds: float
    synthesized: bool


def run_sweep(sweep: dict, synthesize: bool = True, scheduler: str | None = None, workers: int | None = None,
              clock: tuple[float, str] = (100.0, "assumed"), devices: list[Device] | None = None) -> SweepResult:
    """Evaluate every valid point of a sweep; with ``synthesize``, also synthesize every design whose
    parameter memories on chip stay within ``synth_max_mbit`` (a BERT-base member's 85 Mbit fits no
    FPGA's block RAM, and its memories of thousands of tiles take Yosys many minutes each)."""
    points, skipped = sweep_points(sweep)
    limit = sweep["synth_max_mbit"] * 1e6
    return run_points(points, sweep["tokens"], synthesize, scheduler, workers, clock, skipped,
                      synthesize_if=lambda p: memory_bits(p) <= limit, devices=devices)


def memory_bits(point: DesignPoint) -> int:
    """Parameter memory bits on chip at a point (every copy, every resident member; with the encoder,
    its memories too, the exponential table once per softmax lane)."""
    plan = point.plan()
    bits = plan.memory_sets * sum(words * width for words, width in plan.memory_shapes.values())
    units = point.units(plan)
    if units is not None:
        from ..generator.encoder_images import EncoderLayout

        layout = EncoderLayout(plan, units)
        depths, widths = layout.depths(), layout.widths()
        bits += sum(depths[n] * widths[n] * (units.attention.lanes if n == "exp_table" else 1) for n in depths)
    return point.copies * bits


def run_points(points: list[DesignPoint], tokens: int, synthesize: bool = True, scheduler: str | None = None,
               workers: int | None = None, clock: tuple[float, str] = (100.0, "assumed"),
               skipped: list | None = None, synthesize_if=lambda point: True,
               devices: list[Device] | None = None) -> SweepResult:
    """Evaluate points; with ``synthesize``, generate and synthesize every distinct design (of the
    points ``synthesize_if`` accepts; the others get the resource model only, marked in the rows);
    then judge every point on ``devices`` (default: every device in hw/design/devices.py)."""
    from .parallel import run_parallel
    from .synth import design_jobs
    from .synth import synthesize as synthesize_designs

    started = time.perf_counter()
    clock_mhz, clock_source = clock
    rows = [evaluate(p, tokens, clock_mhz) | {"clock_source": clock_source} for p in points]
    synthesis_seconds = 0.0
    chosen = [i for i, p in enumerate(points) if synthesize and synthesize_if(p)]
    for i, row in enumerate(rows):
        row["synthesized"] = i in chosen
    if chosen:
        digest = source_digest()
        missing = [(points[i], digest) for i in chosen if not verilog_path(points[i], digest).exists()]
        for _ in run_parallel(generate_verilog, missing, scheduler, workers, desc="verilog"):
            pass
        designs = [design_jobs(verilog_path(points[i], digest).read_text(), TOP) for i in chosen]
        stats: dict = {}
        results = synthesize_designs(designs, scheduler, workers, stats)
        synthesis_seconds = stats["seconds"]
        for row, point, result in zip([rows[i] for i in chosen], [points[i] for i in chosen], results):
            total = result.total * point.copies
            row.update({f"synth_{f}": round(getattr(total, f)) for f in RESOURCE_FIELDS})
            row["synth_encoder_lut_share"] = round(encoder_share(result.blocks), 4)
            row.update({f"synth_{name}_lut": round(res.lut * point.copies) for name, res in result.blocks.items()})
    for point, row in zip(points, rows):
        row.update(device_columns(row, list(DEVICES.values()) if devices is None else devices, clock, point))
    return SweepResult(rows, skipped or [], time.perf_counter() - started, synthesis_seconds, bool(chosen))


def luts(row: dict) -> float:
    """A row's LUTs: synthesized where the sweep synthesized the point, else the model's."""
    return float(row["synth_lut"] if row.get("synth_lut") not in (None, "") else row["model_lut"])


def write_csv(rows: list[dict], path: Path) -> Path:
    """Write the rows (every key of any row is a column), whole or not at all."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    with staging.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(staging, path)
    return path


# ---- figures from the other experiments ------------------------------------------------------------
TIMING_FILE = Path("results") / "timing.yaml"
ACCURACY_COLUMNS = {1: "1-1-4", 2: "BEBERT 1-1-4 x2", 4: "BEBERT 1-1-4 x4"}


def measured_clock(path: Path = TIMING_FILE) -> tuple[float, str]:
    """The clock the figures assume: the slowest fmax that place and route measured (timing.py,
    written by scripts/timing_check.py), else 100 MHz, assumed."""
    if not path.exists():
        return 100.0, "assumed; no results/timing.yaml"
    runs = [r for r in (yaml.safe_load(path.read_text()) or {}).get("configurations", []) if r.get("fmax_mhz")]
    if not runs:
        return 100.0, f"assumed; {path} holds no fmax"
    slowest = min(runs, key=lambda r: r["fmax_mhz"])
    return float(slowest["fmax_mhz"]), (f"nextpnr-ecp5 fmax, slowest of {len(runs)} configuration(s) in {path}")


def ensemble_accuracy(path: Path, task: str = "sst2") -> dict[int, float]:
    """SST-2 dev accuracy by member count (1: the single binary 1-1-4 model; 2 and 4: BEBERT 1-1-4 by
    AdaBoost) from the GLUE table of a report of the ensemble experiments (scripts/bebert_results.py)."""
    if not path.exists():
        raise SweepError(f"No ensemble results at {path}; pass --accuracy with a report of "
                         f"scripts/bebert_results.py, or '' to skip.")
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in path.read_text().splitlines()
            if line.startswith("|")]
    # The GLUE table: the one whose header starts with "task" and names the accuracy columns (the report
    # holds other tables with task rows and other tables that mention these models).
    start = next((i for i, cells in enumerate(rows)
                  if cells[:1] == ["task"] and "fp32" in cells and set(ACCURACY_COLUMNS.values()) <= set(cells)), None)
    row = None if start is None else next((cells for cells in rows[start + 1:] if cells[:1] == [task]), None)
    if row is None:
        raise SweepError(f"{path} has no GLUE table with a {task} row; it is written by scripts/bebert_results.py.")
    cells = dict(zip(rows[start], row))
    accuracy = {}
    for members, column in ACCURACY_COLUMNS.items():
        try:
            accuracy[members] = float(cells.get(column, "-"))
        except ValueError:
            continue  # not run yet ("-")
    return accuracy


def member_latencies(sweep: dict, clock_mhz: float) -> list[dict]:
    """Latency of the MiniLM 1-1-4 ensemble with 1, 2 and 4 members (all resident, or replicated)
    at every PE x SIMD of the sweep (with the encoder on chip at the sweep's first lanes, unless the
    sweep is of the products alone), from the cycle model: the accuracy-latency plot's x axis."""
    rows = []
    encoder = sweep["encoder"]
    lanes = (sweep["max_tokens"], sweep["attention_lanes"][0], sweep["hidden_lanes"][0]) if encoder else (0, 0, 0)
    for pe, simd, members, mapping in itertools.product(sweep["pe"], sweep["simd"], ACCURACY_COLUMNS, sweep["mapping"]):
        point = DesignPoint(f"minilm:1-1-4:{members}", pe, simd, members if mapping == "multiplexed" else 1, 4, mapping,
                            encoder, *lanes)
        if point.problem():
            continue
        cycles = point_cycles(point, sweep["tokens"])["total"]
        rows.append({"members": members, "mapping": mapping, "pe": pe, "simd": simd,
                     "latency_ms": 1e3 * cycles / (clock_mhz * 1e6)})
    return rows
