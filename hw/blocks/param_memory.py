"""Parameter memories: one per resident member and per kind (weights, thresholds, affine).

A synchronous RAM (one read port, read data one cycle after the address; one write port for the
parameter load stream, writing a whole word or, with ``chunk``, one chunk of a word per cycle) whose
initial contents come from $readmemh image files (images.py), one per block-RAM tile, each read by its
own tile (``tile_images`` splits a memory's image), or without an image are all zeros. It is
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
costs. A memory written in chunks takes only tile widths that divide the chunk (a RAMB36 as
512 x 64, a RAMB18 as 512 x 32), so that each tile column is written by one chunk; it has no image.

**Image-less memories** zero every tile in an initial loop, which Verilator and Icarus run and Yosys
takes as the INIT contents. Yosys unrolls the loop, in time quadratic in the words unrolled in one
module (4000 x 100 in 25 tiles: unfinished after 16 minutes), so several such tiles are instances of
this module as a memory of one tile, which it elaborates once (864 x 4096, 128 tiles: a minute).

Resource model (``memory_resources``): ROWS x COLS block RAM tiles; the read mux, ROWS:1 per
data bit (``mux_luts``), plus the row select register; the write enables, one LUT per row and chunk
(none for one row written whole words), as synth_xilinx maps them (tests/test_hw_param_memory.py).
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
// Read data follows the address by one cycle. The write port writes a whole word (CHUNK = 0;
// wchunk is ignored) or one chunk of CHUNK bits of a word (CHUNK a power of two that TILE_WIDTH
// divides, so that every tile column lies within one chunk): chunk wchunk holds bits
// [wchunk * CHUNK, (wchunk + 1) * CHUNK) of the word, those past WIDTH dropped. With HAS_IMAGE,
// tile (r, c) reads its initial contents in its own initial block from the $readmemh image
// "<INIT>/r<rrrr>_c<cccc>.hex" (four decimal digits each, TILE_DEPTH words of TILE_WIDTH bits), so
// no block depends on another's having run, and a synthesizer maps each image into its tile's block
// RAM contents; without, every tile starts all zeros (an initial loop, INIT unused; several tiles
// are instances of this module, one tile each, below). Synthesis for estimates defines
// BEBERT_NO_IMAGES: no initial contents (they do not change how a writable RAM maps).
module @MODULE@ #(
    parameter integer WIDTH = 8,
    parameter integer DEPTH = 2,
    parameter integer ADDR_BITS = 1,
    parameter integer TILE_WIDTH = 72,
    parameter integer TILE_DEPTH = 512,
    parameter integer CHUNK = 0,
    parameter integer CHUNK_BITS = 1,
    parameter integer HAS_IMAGE = 1,
    parameter INIT = "images"
) (
    input  wire                                   clk,
    input  wire [ADDR_BITS-1:0]                   raddr,
    output wire [WIDTH-1:0]                       rdata,
    input  wire                                   we,
    input  wire [ADDR_BITS-1:0]                   waddr,
    input  wire [CHUNK_BITS-1:0]                  wchunk,
    input  wire [(CHUNK > 0 ? CHUNK : WIDTH)-1:0] wdata
);
    localparam integer COLS = (WIDTH + TILE_WIDTH - 1) / TILE_WIDTH;
    localparam integer ROWS = (DEPTH + TILE_DEPTH - 1) / TILE_DEPTH;
    localparam integer PADDED = COLS * TILE_WIDTH;
    localparam integer TILE_BITS = $clog2(TILE_DEPTH);
    localparam integer ROW_BITS = ROWS > 1 ? ADDR_BITS - TILE_BITS : 1;
    // the tile columns one write covers: a chunk's, or all of them
    localparam integer WRITE_COLS = CHUNK > 0 ? CHUNK / TILE_WIDTH : COLS;
    localparam [0:0] SPLIT = HAS_IMAGE == 0 && ROWS * COLS > 1;  // tiles as instances (below)
`ifndef BEBERT_NO_IMAGES
    // n as four decimal digits (ASCII), for the tiles' image names
    function [31:0] decimal4(input integer n);
        decimal4 = "0000" + (n / 1000 % 10 << 24) + (n / 100 % 10 << 16) + (n / 10 % 10 << 8) + n % 10;
    endfunction
`endif
    // Addresses split into the row of tiles and the word within a tile.
    wire [TILE_BITS-1:0]             rword, wword;
    wire [ROW_BITS-1:0]              rrow, wrow;
    wire [WRITE_COLS*TILE_WIDTH-1:0] write_data;  // column c takes its part (c % WRITE_COLS)
    generate
        if (CHUNK > 0) begin : chunked
            assign write_data = wdata;
        end else if (PADDED > WIDTH) begin : pad
            assign write_data = {{(PADDED - WIDTH){1'b0}}, wdata};
        end else begin : no_pad
            assign write_data = wdata;
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
    wire [PADDED-1:0]    row_data [0:ROWS-1];
    reg  [ROW_BITS-1:0]  row_q;
    wire [ROWS*COLS-1:0] tile_write;  // tile (r, c) is written when bit r * COLS + c is set
    always @(posedge clk) row_q <= rrow;
    genvar r, c;
    generate
        for (r = 0; r < ROWS; r = r + 1) begin : write_enable
            for (c = 0; c < COLS; c = c + 1) begin : col
                localparam integer CHUNK_INDEX = c / WRITE_COLS;  // the chunk that holds this column
                assign tile_write[r * COLS + c] =
                    we && wrow == r && (CHUNK == 0 || wchunk == CHUNK_INDEX[CHUNK_BITS-1:0]);
            end
        end
        // The tiles, held here (row[r].col[c].tile), or for an image-less memory of several tiles,
        // each an instance of this module as a memory of one tile: Yosys unrolls the zeroing loop
        // of every tile it elaborates, in time that grows with the square of the words unrolled in
        // one module, and elaborates the one-tile memory once for all.
        for (r = 0; r < (SPLIT ? 0 : ROWS); r = r + 1) begin : row
            for (c = 0; c < COLS; c = c + 1) begin : col
                reg [TILE_WIDTH-1:0] tile [0:TILE_DEPTH-1];
                reg [TILE_WIDTH-1:0] q;
`ifndef BEBERT_NO_IMAGES
                if (HAS_IMAGE != 0) begin : image
                    initial $readmemh({INIT, "/r", decimal4(r), "_c", decimal4(c), ".hex"}, tile);
                end else begin : zeros
                    integer i;
                    initial for (i = 0; i < TILE_DEPTH; i = i + 1) tile[i] = {TILE_WIDTH{1'b0}};
                end
`endif
                always @(posedge clk) begin
                    if (tile_write[r * COLS + c]) tile[wword] <= write_data[c % WRITE_COLS * TILE_WIDTH +: TILE_WIDTH];
                    q <= tile[rword];
                end
                assign row_data[r][c * TILE_WIDTH +: TILE_WIDTH] = q;
            end
        end
        for (r = 0; r < (SPLIT ? ROWS : 0); r = r + 1) begin : tile_row
            for (c = 0; c < COLS; c = c + 1) begin : tile_col
                wire [TILE_WIDTH-1:0] q;
                @MODULE@ #(.WIDTH(TILE_WIDTH), .DEPTH(TILE_DEPTH), .ADDR_BITS(TILE_BITS), .TILE_WIDTH(TILE_WIDTH),
                    .TILE_DEPTH(TILE_DEPTH), .CHUNK(0), .CHUNK_BITS(1), .HAS_IMAGE(0), .INIT(INIT)) ram (
                    .clk(clk), .raddr(rword), .rdata(q), .we(tile_write[r * COLS + c]), .waddr(wword),
                    .wchunk(1'b0), .wdata(write_data[c % WRITE_COLS * TILE_WIDTH +: TILE_WIDTH]));
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


def tile_images(bits: np.ndarray, chunk: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """A memory's image, (words, width) bits, split into its tiles as the Verilog reads them: per tile
    its file name (within the memory's image folder, ``INIT``) and its (TILE_DEPTH, TILE_WIDTH) bits,
    zero past the image (the rows and columns a tile has beyond the memory, never read). A memory
    written in chunks has no image (ParamMemory), so a ``chunk`` is refused."""
    if chunk is not None:
        raise ValueError(f"a parameter memory written in chunks of {chunk} bits has no image; "
                         "tile_images splits the images of memories written whole words at a time")
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
    """``width`` x ``depth`` RAM; ports ``raddr``/``rdata`` (one cycle of latency) and
    ``we``/``waddr``/``wchunk``/``wdata``. ``chunk=None``: a write writes a whole word (``wdata``
    ``width`` bits; ``wchunk``, one bit, is ignored); ``chunk=C`` (a power of two below ``width``):
    it writes chunk ``wchunk`` of the word, ``wdata`` (C bits) to its bits [wchunk * C,
    (wchunk + 1) * C), those past ``width`` dropped. ``init``: the folder of the tile images the
    memory starts with (relative to the simulator's or synthesizer's working folder), or None for
    none: every word starts all zeros. A chunked memory is image-less (its tiles are not the images'
    geometry, ``tile_images``)."""

    def __init__(self, width: int, depth: int, init: str | None, chunk: int | None = None):
        if width < 1 or depth < 1:
            raise ValueError(f"a parameter memory needs a positive width and depth, not {width} x {depth}")
        if chunk is not None:
            if chunk < 1 or chunk & (chunk - 1) or chunk >= width:
                raise ValueError(f"a write chunk must be a power of two below the width {width}, not {chunk}")
            if init is not None:
                raise ValueError("a parameter memory written in chunks has no image: pass init=None")
        self.width, self.depth, self.init, self.chunk = width, depth, init, chunk
        self.chunks = 1 if chunk is None else ceil_div(width, chunk)
        abits = address_bits(depth)
        super().__init__({"raddr": In(abits), "rdata": Out(width), "we": In(1), "waddr": In(abits),
                          "wchunk": In(chunk_bits(self.chunks)), "wdata": In(chunk or width)})

    def elaborate(self, platform):
        m = Module()
        tile_depth, tile_width, _ = tile_geometry(self.depth, self.width, self.chunk)
        image = {} if self.init is None else {"p_INIT": self.init}
        m.submodules.ram = Instance(
            MODULE_NAME,
            p_WIDTH=self.width, p_DEPTH=self.depth, p_ADDR_BITS=address_bits(self.depth),
            p_TILE_WIDTH=tile_width, p_TILE_DEPTH=tile_depth, p_CHUNK=self.chunk or 0,
            p_CHUNK_BITS=chunk_bits(self.chunks), p_HAS_IMAGE=int(self.init is not None), **image,
            i_clk=ClockSignal(), i_raddr=self.raddr, o_rdata=self.rdata,
            i_we=self.we, i_waddr=self.waddr, i_wchunk=self.wchunk, i_wdata=self.wdata,
        )
        return m


def chunk_bits(chunks: int) -> int:
    """Bits of a chunk index among ``chunks`` (at least one)."""
    return max(1, (chunks - 1).bit_length())


# ---- the resource model ---------------------------------------------------------------------------
def memory_resources(depth: int, width: int, chunk: int | None = None) -> Resources:
    """Resources of one parameter memory of depth x width, written whole words or in chunks of
    ``chunk`` bits (module doc)."""
    rows, grid = block_ram_grid(depth, width, chunk)
    chunks = 1 if chunk is None else ceil_div(width, chunk)
    if rows * chunks > 1:  # a write enable per row and chunk: we, the row and the chunk compared
        grid += Resources(lut=rows * chunks)
    if rows > 1:  # the registered row select
        grid += Resources(ff=max(1, (rows - 1).bit_length()))
    return grid
