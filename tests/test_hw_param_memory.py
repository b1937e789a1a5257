"""The parameter memory alone: random images over several tile grids (one tile, a ragged last column,
several rows, a ragged last row) read back equal to the image, and written words read back as
written, in Verilator, in Icarus Verilog (four-state) and in Yosys' generic netlist of the memory with
its images; synth_xilinx and synth_ecp5 map the tiles into block RAM with the images as contents; the
tile images' names and padding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cocotb_tools.check_results import get_results

from bebert.hw.flows.cosim import SIMULATORS, build, run
from bebert.hw.generator.images import hex_lines, write_tile_images
from bebert.errors import BebertError
from bebert.hw.blocks.param_memory import MODULE_NAME, VERILOG, address_bits, memory_resources, tile_geometry, tile_images
from bebert.hw.flows.postsynth import check_tile_contents, synthesize_netlist, synthesize_with_images

# (depth, width): one word; one tile; 3 columns, the last ragged; 3 x 3 tiles; 3 rows, the last ragged
SHAPES = [(1, 8), (300, 50), (600, 100), (1200, 200), (5000, 9)]
TOP = "memory_top"


def memory_folder(tmp: Path, depth: int, width: int, seed: int) -> tuple[Path, np.ndarray]:
    """A folder holding the memory module, a top module that sets its parameters, and a random image's
    tiles; returns it and the image bits."""
    bits = np.random.default_rng(seed).integers(0, 2, size=(depth, width), dtype=np.uint8)
    write_tile_images(bits, tmp / "images" / "mem")
    tile_depth, tile_width, _ = tile_geometry(depth, width)
    abits = address_bits(depth)
    (tmp / f"{MODULE_NAME}.v").write_text(VERILOG)
    (tmp / f"{TOP}.v").write_text(f"""module {TOP}(clk, raddr, rdata, we, waddr, wdata);
    input wire clk; input wire [{abits - 1}:0] raddr; output wire [{width - 1}:0] rdata;
    input wire we; input wire [{abits - 1}:0] waddr; input wire [{width - 1}:0] wdata;
    {MODULE_NAME} #(.WIDTH({width}), .DEPTH({depth}), .ADDR_BITS({abits}), .TILE_WIDTH({tile_width}),
        .TILE_DEPTH({tile_depth}), .INIT("images/mem")) mem (.clk(clk), .raddr(raddr), .rdata(rdata),
        .we(we), .waddr(waddr), .wdata(wdata));
endmodule
""")
    return tmp, bits


def read_back(folder: Path, bits: np.ndarray, sources: list[Path], simulator: str, build_name: str) -> None:
    depth, width = bits.shape
    image = [line for line in hex_lines(bits).split()]
    runner = build(sources, TOP, folder / build_name, simulator=simulator)
    xml = run(runner, "bebert.hw.testbench.param_memory", TOP, folder,
              {"depth": depth, "width": width, "image": image, "seed": depth + width})
    tests, failures = get_results(Path(xml))
    assert tests == 1 and failures == 0, f"see {folder / 'bebert.hw.testbench.param_memory.log'}"


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("depth,width", SHAPES)
def test_memory_reads_its_image(tmp_path, depth, width, simulator):
    folder, bits = memory_folder(tmp_path, depth, width, seed=depth * width)
    read_back(folder, bits, [folder / f"{MODULE_NAME}.v", folder / f"{TOP}.v"], simulator, f"build-{simulator}")


@pytest.mark.parametrize("depth,width", SHAPES[1:])
def test_generic_netlist_reads_its_image(tmp_path, depth, width):
    """Yosys' generic netlist of the memory with its images, simulated by Icarus (four-state)."""
    folder, bits = memory_folder(tmp_path, depth, width, seed=depth + width)
    netlist = synthesize_netlist(folder, [folder / f"{MODULE_NAME}.v", folder / f"{TOP}.v"], TOP, "generic")
    read_back(folder, bits, [netlist], "icarus", "build-generic")


@pytest.mark.parametrize("target", ["xilinx", "ecp5"])
@pytest.mark.parametrize("depth,width", [(600, 100), (5000, 9)])
def test_synthesis_maps_the_images_into_block_ram(tmp_path, depth, width, target):
    """synth_xilinx and synth_ecp5 map every tile, with its image as initial contents, into block RAM:
    the contents Yosys carries into memory mapping equal the images, the RAMB36/RAMB18 count equals
    the resource model's; a changed image is caught."""
    folder, bits = memory_folder(tmp_path, depth, width, seed=3 * depth + width)
    sources = [folder / f"{MODULE_NAME}.v", folder / f"{TOP}.v"]
    mapped = synthesize_with_images(folder, sources, TOP, target, {"mem": "images/mem"})
    tile_depth, tile_width, _ = tile_geometry(depth, width)
    assert mapped.tiles == -(-depth // tile_depth) * -(-width // tile_width)
    if target == "xilinx":
        model = memory_resources(depth, width)
        assert mapped.block_rams == {"RAMB36E1": model.bram36, "RAMB18E1": model.bram18}
    else:
        assert mapped.block_rams["DP16KD"] >= mapped.tiles
    assert not any(cell.startswith("$mem") for cell in mapped.cells)  # nothing left unmapped
    first = folder / "images" / "mem" / "r0000_c0000.hex"
    lines = first.read_text().split()
    lines[0] = format(int(lines[0], 16) ^ 1, f"0{len(lines[0])}x")
    first.write_text("\n".join(lines) + "\n")
    with pytest.raises(BebertError, match="differ from its image"):
        check_tile_contents(folder, json.loads((folder / "memories.json").read_text()), {"mem": "images/mem"})


def test_tile_images_cover_the_image_and_pad_with_zeros():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, size=(1200, 200), dtype=np.uint8)
    tiles = dict(tile_images(bits))
    tile_depth, tile_width, _ = tile_geometry(1200, 200)
    assert sorted(tiles) == [f"r{r:04d}_c{c:04d}.hex" for r in range(3) for c in range(3)]
    grid = np.block([[tiles[f"r{r:04d}_c{c:04d}.hex"] for c in range(3)] for r in range(3)])
    assert grid.shape == (3 * tile_depth, 3 * tile_width)
    assert np.array_equal(grid[:1200, :200], bits) and not grid[1200:].any() and not grid[:, 200:].any()
    assert [name for name, _ in tile_images(np.zeros((0, 30), dtype=np.uint8))] == ["r0000_c0000.hex"]
