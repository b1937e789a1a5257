"""The parameter memory alone: random images over several tile grids (one tile, a ragged last column,
several rows, a ragged last row) read back equal to the image, and written words read back as
written, in Verilator, in Icarus Verilog (four-state) and in Yosys' generic netlist of the memory with
its images; synth_xilinx and synth_ecp5 map the tiles into block RAM with the images as contents; the
tile images' names and padding. Image-less memories, written whole words or chunk by chunk: they
read all zeros, then every chunk written (in random order, some over chunks written before) reads
back, in both simulators and in the generic netlist; they map into the block RAM the model counts,
with zeros as every tile's contents; the chunked tile geometry and the wrapper's ports."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import UnusedElaboratable
from cocotb_tools.check_results import get_results

from bebert.hw.flows.cosim import SIMULATORS, build, run, verilator_environment
from bebert.hw.generator.images import hex_lines, write_tile_images
from bebert.errors import BebertError
from bebert.hw.blocks.param_memory import (MODULE_NAME, VERILOG, ParamMemory, address_bits, chunk_bits,
                                           memory_resources, tile_geometry, tile_images)
from bebert.hw.flows.postsynth import check_tile_contents, synthesize_netlist, synthesize_with_images
from bebert.hw.resources import RAMB18_GEOMETRIES, RAMB36_GEOMETRIES, mux_luts

# (depth, width): one word; one tile; 3 columns, the last ragged; 3 x 3 tiles; 3 rows, the last ragged
SHAPES = [(1, 8), (300, 50), (600, 100), (1200, 200), (5000, 9)]
# (depth, width, chunk) of image-less memories: one row of 7 tiles two to a chunk, the last chunk
# half past the width; 3 x 4 tiles, a chunk each, the last row ragged; 17 tiles, four to a chunk, the
# last chunk mostly past the width; one tile written whole words
IMAGELESS = [(300, 200, 64), (1100, 100, 32), (40, 520, 128), (300, 50, None)]
TOP = "memory_top"


def memory_folder(tmp: Path, depth: int, width: int, seed: int, chunk: int | None = None,
                  image: bool = True) -> tuple[Path, np.ndarray]:
    """A folder holding the memory module, a top module that sets its parameters, and a random image's
    tiles (or for ``image=False`` none: the memory starts at zero); returns it and the initial bits."""
    if image:
        bits = np.random.default_rng(seed).integers(0, 2, size=(depth, width), dtype=np.uint8)
        write_tile_images(bits, tmp / "images" / "mem")
    else:
        bits = np.zeros((depth, width), dtype=np.uint8)
    tile_depth, tile_width, _ = tile_geometry(depth, width, chunk)
    abits, cbits, wbits = address_bits(depth), chunk_bits(-(-width // (chunk or width))), chunk or width
    (tmp / f"{MODULE_NAME}.v").write_text(VERILOG)
    (tmp / f"{TOP}.v").write_text(f"""module {TOP}(clk, raddr, rdata, we, waddr, wchunk, wdata);
    input wire clk; input wire [{abits - 1}:0] raddr; output wire [{width - 1}:0] rdata;
    input wire we; input wire [{abits - 1}:0] waddr; input wire [{cbits - 1}:0] wchunk; input wire [{wbits - 1}:0] wdata;
    {MODULE_NAME} #(.WIDTH({width}), .DEPTH({depth}), .ADDR_BITS({abits}), .TILE_WIDTH({tile_width}),
        .TILE_DEPTH({tile_depth}), .CHUNK({chunk or 0}), .CHUNK_BITS({cbits}), .HAS_IMAGE({int(image)}),
        .INIT("images/mem")) mem (.clk(clk), .raddr(raddr), .rdata(rdata), .we(we), .waddr(waddr), .wchunk(wchunk),
        .wdata(wdata));
endmodule
""")
    return tmp, bits


def read_back(folder: Path, bits: np.ndarray, sources: list[Path], simulator: str, build_name: str,
              chunk: int | None = None, image: bool = True) -> None:
    depth, width = bits.shape
    runner = build(sources, TOP, folder / build_name, simulator=simulator)
    xml = run(runner, "bebert.hw.testbench.param_memory", TOP, folder,
              {"depth": depth, "width": width, "image": hex_lines(bits).split() if image else None,
               "chunk": chunk, "seed": depth + width})
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


# ---- image-less memories, written whole words or in chunks ---------------------------------------------
@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("depth,width,chunk", IMAGELESS)
def test_imageless_memory_starts_at_zero_and_takes_chunks(tmp_path, depth, width, chunk, simulator):
    """Every word reads zero (four-state), then the words and chunks written read back as written."""
    folder, bits = memory_folder(tmp_path, depth, width, 0, chunk, image=False)
    read_back(folder, bits, [folder / f"{MODULE_NAME}.v", folder / f"{TOP}.v"], simulator, f"build-{simulator}",
              chunk, image=False)


def test_generic_netlist_of_a_chunked_memory_starts_at_zero(tmp_path):
    """Yosys takes the zeroing loop as the tiles' contents: its generic netlist, simulated by Icarus
    (four-state), reads zeros, then the chunks written."""
    depth, width, chunk = IMAGELESS[1]
    folder, bits = memory_folder(tmp_path, depth, width, 0, chunk, image=False)
    netlist = synthesize_netlist(folder, [folder / f"{MODULE_NAME}.v", folder / f"{TOP}.v"], TOP, "generic")
    read_back(folder, bits, [netlist], "icarus", "build-generic", chunk, image=False)


@pytest.mark.parametrize("target", ["xilinx", "ecp5"])
@pytest.mark.parametrize("depth,width,chunk", IMAGELESS[:2])
def test_synthesis_maps_an_imageless_memory_into_block_ram(tmp_path, depth, width, chunk, target):
    """synth_xilinx and synth_ecp5 map every tile of a chunked image-less memory into block RAM with
    zeros as its contents; on 7-series the RAMB36/RAMB18 count and the LUTs (read mux and write
    enables) equal the resource model's."""
    folder, _ = memory_folder(tmp_path, depth, width, 0, chunk, image=False)
    sources = [folder / f"{MODULE_NAME}.v", folder / f"{TOP}.v"]
    mapped = synthesize_with_images(folder, sources, TOP, target, {})
    tiles = [cell for module in json.loads((folder / "memories.json").read_text())["modules"].values()
             for cell in module["cells"].values() if cell["type"] == "$mem_v2"]
    tile_depth, tile_width, _ = tile_geometry(depth, width, chunk)
    assert len(tiles) == -(-depth // tile_depth) * -(-width // tile_width)
    for tile in tiles:
        assert (int(tile["parameters"]["WIDTH"], 2), int(tile["parameters"]["SIZE"], 2)) == (tile_width, tile_depth)
        assert set(tile["parameters"]["INIT"]) == {"0"}
    if target == "xilinx":
        model = memory_resources(depth, width, chunk)
        assert mapped.block_rams == {"RAMB36E1": model.bram36, "RAMB18E1": model.bram18}
        assert (mapped.luts, mapped.flip_flops) == (model.lut, model.ff)
    else:
        assert mapped.block_rams["DP16KD"] >= len(tiles)
    assert not any(cell.startswith("$mem") for cell in mapped.cells)  # nothing left unmapped


@pytest.mark.parametrize("depth,width,chunk,image", [shape + (False,) for shape in IMAGELESS] + [
    (1200, 200, None, False), (1200, 200, None, True)])
def test_lint_clean(tmp_path, depth, width, chunk, image):
    """verilator --lint-only -Wall: the module needs no waiver, chunked or not, without an image (one
    tile, or several as instances of the module) or with one."""
    folder, _ = memory_folder(tmp_path, depth, width, 1, chunk, image=image)
    lint = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", TOP, f"{MODULE_NAME}.v", f"{TOP}.v"],
                          cwd=folder, env={**os.environ, **verilator_environment()}, capture_output=True, text=True)
    assert lint.returncode == 0 and "%Warning" not in lint.stderr, lint.stderr[-3000:]


@pytest.mark.parametrize("depth,width,chunk,geometry", [
    (864, 4096, 128, (1024, 32, True)),  # 1024 x 36 at 32 bits: one row (512 x 64 ties at two)
    (300, 200, 64, (512, 32, False)),  # 7 RAMB18 at 512 x 32 beat 4 RAMB36 at 512 x 64
    (500, 256, 128, (512, 64, True)),  # a RAMB36 as 512 x 64
    (20000, 64, 32, (4096, 8, True)),  # 4096 x 9 at 8 bits
    (3000, 40, 32, (1024, 16, False)),
])
def test_chunked_tile_geometry(depth, width, chunk, geometry):
    """With a chunk, only tile widths that divide it (a native geometry at a narrower power of two),
    the fewest RAMB36 equivalents of those; the model counts a write enable per row and chunk."""
    assert tile_geometry(depth, width, chunk) == geometry
    tile_depth, tile_width, big = geometry
    assert chunk % tile_width == 0
    rows, tiles = -(-depth // tile_depth), -(-depth // tile_depth) * -(-width // tile_width)
    cost = tiles * (1 if big else 0.5)
    for d, w in RAMB36_GEOMETRIES + RAMB18_GEOMETRIES:  # no grid of tiles that divide the chunk costs less
        for narrower in (w2 for w2 in (1, 2, 4, 8, 16, 32, 64) if w2 <= w and chunk % w2 == 0):
            half = (d, w) in RAMB18_GEOMETRIES
            assert -(-depth // d) * -(-width // narrower) * (0.5 if half else 1) >= cost
    model = memory_resources(depth, width, chunk)
    assert (model.bram36, model.bram18) == ((tiles, 0) if big else (0, tiles))
    assert model.lut == width * mux_luts(rows) + rows * -(-width // chunk)
    assert tile_geometry(depth, width) == tile_geometry(depth, width, None)


def test_param_memory_ports_and_refusals():
    """The wrapper's ports and the Verilog parameters it sets, whole words with an image and chunked
    without; what it refuses."""
    # the memories built here only to read their ports and parameters (elaborated by hand), and the
    # refused ones, exist for Amaranth but are never part of a design: collect them here, where their
    # UnusedElaboratable warning is expected, not during a later test
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        whole, chunked = ParamMemory(100, 1100, "images/m"), ParamMemory(100, 1100, None, chunk=32)
        assert [(len(m.wchunk), len(m.wdata), len(m.rdata), len(m.waddr)) for m in (whole, chunked)] == [
            (1, 100, 100, 11), (2, 32, 100, 11)]
        assert [len(ParamMemory(width, 40, None, chunk=128).wchunk) for width in (200, 520, 1024)] == [1, 3, 3]
        assert dict(whole.elaborate(None).submodules.ram.parameters) == {
            "WIDTH": 100, "DEPTH": 1100, "ADDR_BITS": 11, "TILE_WIDTH": 36, "TILE_DEPTH": 512, "CHUNK": 0,
            "CHUNK_BITS": 1, "HAS_IMAGE": 1, "INIT": "images/m"}
        assert dict(chunked.elaborate(None).submodules.ram.parameters) == {
            "WIDTH": 100, "DEPTH": 1100, "ADDR_BITS": 11, "TILE_WIDTH": 32, "TILE_DEPTH": 512, "CHUNK": 32,
            "CHUNK_BITS": 2, "HAS_IMAGE": 0}
        assert "INIT" not in ParamMemory(100, 1100, None).elaborate(None).submodules.ram.parameters
        for message, make in [("power of two below the width", lambda: ParamMemory(100, 10, None, chunk=48)),
                              ("power of two below the width", lambda: ParamMemory(100, 10, None, chunk=128)),
                              ("has no image", lambda: ParamMemory(100, 10, "images/m", chunk=32))]:
            with pytest.raises(ValueError, match=message) as refused:
                make()
            del refused
        del whole, chunked
        gc.collect()
    with pytest.raises(ValueError, match="has no image"):
        list(tile_images(np.zeros((10, 100), dtype=np.uint8), chunk=32))
    with pytest.raises(ValueError, match="power of two"):
        tile_geometry(100, 100, 24)
