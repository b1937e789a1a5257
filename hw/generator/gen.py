"""``bebert-hw gen``: the accelerator's Verilog, its memory images and a report, for an artifact.

Writes into one folder (created, or replaced if it holds an earlier generation; a half-written
folder is never left: everything goes to a temporary sibling that is renamed at the end):

* ``bebert_accelerator.v``: the Amaranth design (top module ``bebert_accelerator``), converted with
  the generator's platform (platform.py): the encoder on chip with its own ports, or with
  ``--interface axi`` behind AXI4-Lite and AXI4-Stream (axi_system.py), or the matrix products alone;
* ``bebert_param_memory.v``: the parameter memory module it instantiates (param_memory.py);
* ``bebert_lut6.v``: the one-LUT module of the PE array's compressor trees (compressor.py);
* ``bebert_ram.v``: the RAM module of the memories that start at zero, the sequence stores (ram.py);
* ``lint_waivers.vlt``: the Verilator waivers for Amaranth's output style, each with its reason
  (``verilator --lint-only -Wall lint_waivers.vlt bebert_param_memory.v bebert_lut6.v
  bebert_ram.v bebert_accelerator.v``);
* ``images/member<S>_{weights,thresholds,affine}/r<RRRR>_c<CCCC>.hex``: the $readmemh images of
  resident member slot S, one per block-RAM tile (param_memory.py), read by the Verilog from the
  simulator's or synthesis tool's working folder (run it in the generated folder);
* ``report.yaml``: the parameters, every width, memory sizes, and cycles per step and per
  inference from the cycle model, for a sentence of ``tokens`` tokens.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import yaml

from bebert.errors import BebertError

from ..accelerator import Accelerator, image_name, run_cycles, step_cycles
from ..axi_system import REGISTERS, AxiEncoderSystem, build_registers
from ..blocks.compressor import MODULE_NAME as LUT_MODULE
from ..blocks.compressor import VERILOG as LUT_VERILOG
from ..design.config import HardwareConfig
from ..encoder_accelerator import EncoderAccelerator, build_problem, encoder_image_name
from ..encoder_units import EncoderUnits, encoder_units
from ..schedule import inference_cycles
from .encoder_images import EncoderLayout, encoder_images
from .images import MEMORIES, member_images, write_tile_images
from .platform import convert
from .processes import beside
from ..blocks.param_memory import MODULE_NAME as PARAM_MEMORY_MODULE
from ..blocks.param_memory import VERILOG as PARAM_MEMORY_VERILOG
from ..blocks.ram import MODULE_NAME as RAM_MODULE
from ..blocks.ram import VERILOG as RAM_VERILOG
from ..design.plan import AcceleratorPlan, model_act_bits, plan_for

TOP = "bebert_accelerator"
VERILOG_FILE = f"{TOP}.v"
MEMORY_FILE = f"{PARAM_MEMORY_MODULE}.v"
LUT_FILE = f"{LUT_MODULE}.v"
RAM_FILE = f"{RAM_MODULE}.v"
# the hand-written modules the Amaranth design instantiates, by file
LIBRARY = {MEMORY_FILE: PARAM_MEMORY_VERILOG.lstrip(), LUT_FILE: LUT_VERILOG.lstrip(),
           RAM_FILE: RAM_VERILOG.lstrip()}
LINT_WAIVERS_FILE = "lint_waivers.vlt"
LINT_WAIVERS = Path(__file__).with_name(LINT_WAIVERS_FILE)
REPORT_FILE = "report.yaml"
REPORT_TOKENS = 32  # sentence length the report's per-inference cycles assume


INTERFACES = ("native", "axi")


def verilog(plan: AcceleratorPlan, units: EncoderUnits | None = None, interface: str = "native",
            artifact: int = 0) -> str:
    """The Amaranth design's Verilog (it instantiates the modules of LIBRARY): the matrix-product
    accelerator, or with ``units`` the encoder on chip, with its own ports (``native``) or behind
    AXI4-Lite and AXI4-Stream (``axi``: axi_system.py, whose build registers name ``artifact``)."""
    if interface == "axi":  # generate() refuses it without units
        return convert(lambda: AxiEncoderSystem(plan, units, artifact), TOP)
    return convert(lambda: Accelerator(plan) if units is None else EncoderAccelerator(plan, units), TOP)


def verilog_sources(folder: Path) -> list[Path]:
    """The Verilog files of a generated folder, in the order tools read them."""
    return [Path(folder) / name for name in LIBRARY] + [Path(folder) / VERILOG_FILE]


def report(plan: AcceleratorPlan, tokens: int = REPORT_TOKENS, units: EncoderUnits | None = None,
           interface: str = "native", artifact: int = 0) -> dict:
    cfg = plan.config
    cycles = run_cycles(plan.resident_twin(), tokens)  # the products alone, every member resident
    shapes = plan.memory_shapes
    out = {
        "interface": interface,
        "parameters": {"pe": cfg.pe, "simd": cfg.simd, "act_bits": cfg.act_bits,
                       "members_resident": plan.resident, "ensemble_members": plan.ensemble_members,
                       "combine": plan.combine, "param_width": cfg.param_width},
        "widths": {"accumulator": plan.acc_bits, "threshold": plan.threshold_bits, "levels": plan.levels,
                   "result_lane": plan.value_bits, "bias": plan.bias_bits, "score": plan.score_bits},
        # a resident member's memories, or the two layer slots of streamed parameters
        "memories_per_set": {name: {"words": words, "width": width, "bits": words * width}
                             for name, (words, width) in shapes.items()},
        "memory_bits_total": plan.memory_sets * sum(words * width for words, width in shapes.values()),
        "buffers_codes": {"input": plan.input_buffer_codes, "chain": plan.chain_buffer_codes},
        "cycles": {
            "tokens": tokens,
            "per_step_and_row": {s.name: step_cycles(plan, s) for s in plan.steps},
            "per_inference_by_step": cycles.by_step,
            "parameter_load": cycles.parameter_load,
            "answer": cycles.answer,
            "per_inference": cycles.total,
        },
    }
    if units is None:
        return out
    if cfg.streamed:
        out["param_stream"] = {"width": cfg.param_width, "beats_per_unit": {u.name: plan.unit_beats(u.name)
                                                                           for u in plan.param_units},
                               "beats_per_sentence": plan.sentence_beats,
                               "cycles_assume": "a beat every cycle"}
    encoder = inference_cycles(plan, units, tokens)
    out["cycles"] = {"tokens": tokens, "per_inference": encoder.total, "pe_busy_by_step": dict(encoder.pe_busy),
                     "pe_waits": dict(encoder.pe_waits), "products_alone": cycles.total}
    out["encoder"] = {"max_tokens": units.attention.tokens, "attention_lanes": units.attention.lanes,
                      "hidden_lanes": units.residual.lanes,
                      "memory_words": EncoderLayout(plan, units).depths(),
                      "memory_widths": EncoderLayout(plan, units).widths()}
    if interface == "axi":
        values = build_registers(plan, units, artifact)
        out["registers"] = {name: {"address": f"0x{reg.address:02X}", "access": reg.access,
                                   **({"value": values[name]} if name in values else {})}
                            for name, reg in REGISTERS.items()}
    return out


def generate(plan: AcceleratorPlan, out: Path, force: bool = False, tokens: int = REPORT_TOKENS,
             units: EncoderUnits | None = None, interface: str = "native", artifact: int = 0) -> list[Path]:
    """Write the Verilog, the images and the report into ``out``; returns the files written. With
    ``units``, the encoder on chip (encoder_accelerator.py) and its units' memory images too;
    ``interface`` (INTERFACES) chooses its ports, ``artifact`` the AXI build registers' artifact id."""
    out = Path(out)
    if interface not in INTERFACES:
        raise BebertError(f"--interface must be one of {', '.join(INTERFACES)}, not {interface!r}.")
    if interface == "axi" and units is None:
        raise BebertError("--interface axi is the encoder on chip's; drop --products-only.")
    if plan.config.streamed and units is None:
        raise BebertError("--param-width streams the encoder on chip's layers; the matrix products alone load "
                          "whole members (--members).")
    if not 1 <= tokens <= plan.max_tokens:
        raise BebertError(f"--tokens {tokens} is outside the model's sentence lengths, 1 to {plan.max_tokens} tokens "
                          "(its position table).")
    if units is not None and tokens > units.attention.tokens:
        raise BebertError(f"--tokens {tokens} is longer than the build's longest sentence, --max-tokens "
                          f"{units.attention.tokens}.")
    if units is not None and build_problem(plan, units):
        raise BebertError(f"Cannot build the encoder on chip: {build_problem(plan, units)}.")
    if out.exists() and not out.is_dir():
        raise BebertError(f"Output {out} is a file, not a folder.")
    if out.exists() and not force and any(out.iterdir()) and not (out / VERILOG_FILE).exists():
        raise BebertError(f"Output folder {out} holds other files; choose another --out or pass --force.")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BebertError(f"Cannot create the output folder {out}: {exc.strerror}.") from None
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as exc:
        raise BebertError(f"Cannot write into {out.parent} for the output folder {out}: {exc.strerror}.") from None
    try:
        # The images and the report are written by another process while Amaranth converts the
        # design (the bulk of the time, itself split over two processes: platform.py).
        with beside(lambda: _write_images_and_report(plan, staging, tokens, units, interface, artifact)):
            (staging / VERILOG_FILE).write_text(verilog(plan, units, interface, artifact))
            for name, text in LIBRARY.items():
                (staging / name).write_text(text)
            shutil.copyfile(LINT_WAIVERS, staging / LINT_WAIVERS_FILE)
        if out.exists():
            _keep_unchanged_times(out, staging)
            shutil.rmtree(out)
        os.replace(staging, out)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise BebertError(f"Cannot write the output folder {out}: {exc.strerror}.") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(out.iterdir())


def _write_images_and_report(plan: AcceleratorPlan, staging: Path, tokens: int, units: EncoderUnits | None,
                             interface: str, artifact: int) -> None:
    for s in range(plan.resident):
        images = member_images(plan, s)
        for name in MEMORIES:
            images.write_tiles(name, staging / image_name(s, name))
    if units is not None:
        for name, bits in encoder_images(EncoderLayout(plan, units)).items():
            write_tile_images(bits, staging / encoder_image_name(name))
    (staging / REPORT_FILE).write_text(yaml.safe_dump(report(plan, tokens, units, interface, artifact),
                                                      sort_keys=False))


def _keep_unchanged_times(old: Path, new: Path) -> None:
    """Give regenerated files with unchanged contents their old times, so that a Verilator build of
    the folder (make, by timestamps) is not redone for nothing."""
    for path in new.iterdir():
        before = old / path.name
        if before.is_file() and before.stat().st_size == path.stat().st_size and before.read_bytes() == path.read_bytes():
            stat = before.stat()
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def generate_for_artifact(artifact, config: HardwareConfig, out: Path, force: bool = False):
    """Compile an artifact, plan it on ``config`` and generate; returns (plan, files, seconds)."""
    from bebert.sim.ensemble import load_simulation

    started = time.perf_counter()
    plan = plan_for(load_simulation(artifact), config)
    files = generate(plan, out, force)
    return plan, files, time.perf_counter() - started


def generate_encoder_for_artifact(artifact, config: HardwareConfig, out: Path, tokens: int, attention_lanes: int,
                                  hidden_lanes: int, force: bool = False, interface: str = "native"):
    """As ``generate_for_artifact``, for the encoder on chip with its units sized for sentences of up
    to ``tokens`` tokens, with ``interface``'s ports; returns (plan, units, files, seconds)."""
    from bebert.sim.ensemble import load_simulation

    from ..axi_system import artifact_id

    started = time.perf_counter()
    plan = plan_for(load_simulation(artifact), config)
    units = encoder_units(plan, tokens, attention_lanes, hidden_lanes)
    files = generate(plan, out, force, tokens=min(REPORT_TOKENS, tokens), units=units, interface=interface,
                     artifact=artifact_id(artifact) if interface == "axi" else 0)
    return plan, units, files, time.perf_counter() - started


def encoder_build(plan: AcceleratorPlan, max_tokens: int, attention_lanes: int, hidden_lanes: int) -> EncoderUnits:
    """The encoder units for ``gen``; refuses a longest sentence past the model's positions or
    lanes out of range with one sentence."""
    if not 1 <= max_tokens <= plan.max_tokens:
        raise BebertError(f"--max-tokens {max_tokens} is outside the model's sentence lengths, 1 to "
                          f"{plan.max_tokens} tokens (its position table).")
    try:
        return encoder_units(plan, max_tokens, attention_lanes, hidden_lanes)
    except ValueError as exc:
        raise BebertError(f"Cannot size the encoder's units: {exc}.") from None


def configure(simulation, pe: int, simd: int, members: int | None, act_bits: int | None,
              param_width: int | None = None) -> HardwareConfig:
    """A configuration for a compiled model; ``act_bits`` None takes the model's widest codes."""
    return HardwareConfig(pe, simd, members, model_act_bits(simulation) if act_bits is None else act_bits,
                          param_width)
