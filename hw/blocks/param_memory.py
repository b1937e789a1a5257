"""Parameter memories: one per resident member and per kind (weights, thresholds, affine).

A synchronous RAM (one read port, read data one cycle after the address; one write port for the
parameter load stream) whose initial contents come from $readmemh image files (images.py), one
per block-RAM tile, each read by its own tile (``tile_images`` splits a memory's image). It is
written as a small Verilog module next to the Amaranth design and instantiated from it, rather
than as ``amaranth.lib.memory.Memory``: Amaranth emits a memory's whole contents (even all zeros)
into the netlist, and with its bundled Yosys that took over a minute for one 12 Mbit memory here,
while the built-in model needs 37 Mbit. Image files keep generation fast and let a model's
parameters change without regenerating the Verilog.

**Block RAM tiles.** The memory is built from a grid of tiles of one block-RAM geometry that this
module chooses (``tile_geometry``): ROWS x COLS tiles of TILE_DEPTH words x TILE_WIDTH bits, each
a plain RAM that maps to exactly one RAMB36 or RAMB18 (with its image as the INIT contents), and a
registered row select that muxes the rows' read data. Left to itself, synthesis splits a deep,
wide memory into a mix of geometries by its own cost rules; owning the geometry makes the block RAM
count a design decision that the resource model states exactly, and lets it count the read mux it
costs.

Resource model (``memory_resources``): ROWS x COLS block RAM tiles; the read mux, ROWS:1 per
data bit (``mux_luts``), plus the row select register; the write enables, one compare per row.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from amaranth import ClockSignal, Instance, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..resources import Resources, block_ram_grid, ceil_div, mux_luts, tile_geometry

MODULE_NAME = "bebert_param_memory"

MAX_TILES_PER_SIDE = 10_000  # tile image names carry four decimal digits per row and column

VERILOG = """
// @MODULE@: synchronous RAM for the accelerator's parameters (hw/blocks/param_memory.py), built
// from ROWS x COLS block-RAM tiles of TILE_DEPTH x TILE_WIDTH (TILE_DEPTH a power of two).
// Read data follows the address by one cycle. Tile (r, c) reads its initial contents in its own
// initial block from the $readmemh image "<INIT>/r<rrrr>_c<cccc>.hex" (four decimal digits each,
// TILE_DEPTH words of TILE_WIDTH bits), so no block depends on another's having run, and a
// synthesizer maps each image into its tile's block RAM contents. Synthesis for estimates
// defines BEBERT_NO_IMAGES (contents do not change how a writable RAM maps).
module @MODULE@ #(
    parameter integer WIDTH = 8,
    parameter integer DEPTH = 2,
    parameter integer ADDR_BITS = 1,
    parameter integer TILE_WIDTH = 72,
    parameter integer TILE_DEPTH = 512,
    parameter INIT = "images"
) (
    input  wire                 clk,
    input  wire [ADDR_BITS-1:0] raddr,
    output wire [WIDTH-1:0]     rdata,
    input  wire                 we,
    input  wire [ADDR_BITS-1:0] waddr,
    input  wire [WIDTH-1:0]     wdata
);
    localparam integer COLS = (WIDTH + TILE_WIDTH - 1) / TILE_WIDTH;
    localparam integer ROWS = (DEPTH + TILE_DEPTH - 1) / TILE_DEPTH;
    localparam integer PADDED = COLS * TILE_WIDTH;
    localparam integer TILE_BITS = $clog2(TILE_DEPTH);
    localparam integer ROW_BITS = ROWS > 1 ? ADDR_BITS - TILE_BITS : 1;
`ifndef BEBERT_NO_IMAGES
    // n as four decimal digits (ASCII), for the tiles' image names
    function [31:0] decimal4(input integer n);
        decimal4 = "0000" + (n / 1000 % 10 << 24) + (n / 100 % 10 << 16) + (n / 10 % 10 << 8) + n % 10;
    endfunction
`endif
    // Addresses split into the row of tiles and the word within a tile.
    wire [TILE_BITS-1:0] rword, wword;
    wire [ROW_BITS-1:0]  rrow, wrow;
    wire [PADDED-1:0]    padded_wdata;
    generate
        if (PADDED > WIDTH) begin : pad
            assign padded_wdata = {{(PADDED - WIDTH){1'b0}}, wdata};
        end else begin : no_pad
            assign padded_wdata = wdata;
        end
        if (ROWS > 1) begin : rows
            assign {rrow, rword} = raddr;
            assign {wrow, wword} = waddr;
        end else begin : one_row
            assign rrow = 1'b0;
            assign wrow = 1'b0;
            if (ADDR_BITS < TILE_BITS) begin : narrow
                assign rword = {{(TILE_BITS - ADDR_BITS){1'b0}}, raddr};
                assign wword = {{(TILE_BITS - ADDR_BITS){1'b0}}, waddr};
            end else begin : exact
                assign rword = raddr[TILE_BITS-1:0];
                assign wword = waddr[TILE_BITS-1:0];
            end
        end
    endgenerate
    wire [PADDED-1:0]   row_data [0:ROWS-1];
    reg  [ROW_BITS-1:0] row_q;
    always @(posedge clk) row_q <= rrow;
    genvar r, c;
    generate
        for (r = 0; r < ROWS; r = r + 1) begin : row
            for (c = 0; c < COLS; c = c + 1) begin : col
                reg [TILE_WIDTH-1:0] tile [0:TILE_DEPTH-1];
                reg [TILE_WIDTH-1:0] q;
`ifndef BEBERT_NO_IMAGES
                initial $readmemh({INIT, "/r", decimal4(r), "_c", decimal4(c), ".hex"}, tile);
`endif
                always @(posedge clk) begin
                    if (we && wrow == r) tile[wword] <= padded_wdata[c * TILE_WIDTH +: TILE_WIDTH];
                    q <= tile[rword];
                end
                assign row_data[r][c * TILE_WIDTH +: TILE_WIDTH] = q;
            end
        end
    endgenerate
    assign rdata = row_data[row_q][WIDTH-1:0];
endmodule
""".replace("@MODULE@", MODULE_NAME)


def tile_image_name(row: int, col: int) -> str:
    """The image file of tile (row, col) within its memory's image folder, as the Verilog names it."""
    return f"r{row:04d}_c{col:04d}.hex"


def tile_images(bits: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
    """A memory's image, (words, width) bits, split into its tiles as the Verilog reads them: per tile
    its file name (within the memory's image folder, ``INIT``) and its (TILE_DEPTH, TILE_WIDTH) bits,
    zero past the image (the rows and columns a tile has beyond the memory, never read)."""
    words, width = bits.shape
    depth = max(words, 1)  # a memory of no words still has one (ParamMemory)
    tile_depth, tile_width, _ = tile_geometry(depth, width)
    rows, cols = ceil_div(depth, tile_depth), ceil_div(width, tile_width)
    if max(rows, cols) > MAX_TILES_PER_SIDE:
        raise ValueError(f"a {depth} x {width} memory needs {rows} x {cols} tiles, over the image names' "
                         f"{MAX_TILES_PER_SIDE - 1} per side")
    padded = np.zeros((rows * tile_depth, cols * tile_width), dtype=np.uint8)
    padded[:words, :width] = bits
    for r in range(rows):
        for c in range(cols):
            yield (tile_image_name(r, c),
                   padded[r * tile_depth:(r + 1) * tile_depth, c * tile_width:(c + 1) * tile_width])


def address_bits(depth: int) -> int:
    return max(1, (max(depth, 1) - 1).bit_length())


class ParamMemory(wiring.Component):
    """``width`` x ``depth`` RAM initialized from the tile images in the folder ``init`` (relative to
    the simulator's or synthesizer's working folder); ports ``raddr``/``rdata``
    (one cycle of latency) and ``we``/``waddr``/``wdata``."""

    def __init__(self, width: int, depth: int, init: str):
        if width < 1 or depth < 1:
            raise ValueError(f"a parameter memory needs a positive width and depth, not {width} x {depth}")
        self.width, self.depth, self.init = width, depth, init
        abits = address_bits(depth)
        super().__init__({"raddr": In(abits), "rdata": Out(width), "we": In(1), "waddr": In(abits),
                          "wdata": In(width)})

    def elaborate(self, platform):
        m = Module()
        tile_depth, tile_width, _ = tile_geometry(self.depth, self.width)
        m.submodules.ram = Instance(
            MODULE_NAME,
            p_WIDTH=self.width, p_DEPTH=self.depth, p_ADDR_BITS=address_bits(self.depth),
            p_TILE_WIDTH=tile_width, p_TILE_DEPTH=tile_depth, p_INIT=self.init,
            i_clk=ClockSignal(), i_raddr=self.raddr, o_rdata=self.rdata,
            i_we=self.we, i_waddr=self.waddr, i_wdata=self.wdata,
        )
        return m


# ---- the resource model ---------------------------------------------------------------------------
def memory_resources(depth: int, width: int) -> Resources:
    """Resources of one parameter memory of depth x width (module doc)."""
    rows, grid = block_ram_grid(depth, width)
    if rows == 1:
        return grid
    # the registered row select and one write-enable compare per row
    return grid + Resources(lut=rows, ff=max(1, (rows - 1).bit_length()))
