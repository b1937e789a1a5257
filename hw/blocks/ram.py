"""The generated design's zero-initialized RAMs, as one hand-written Verilog module.

The encoder's sequence stores (the residual stream, the attention's keys and values, the codes
store: 2.1 Mbit at 128 tokens) are Amaranth ``Memory`` objects that start at zero. Amaranth writes
a memory's initial contents into the netlist bit by bit, zeros included, and that took a fifth of
``bebert-hw gen``'s time on the built-in model. The generator's Amaranth platform
(generator/platform.py), through Amaranth's ``get_memory`` override, lowers every memory that
``lowers_to_module`` (it starts at zero and has one write port and one synchronous, non-transparent
read port) to an instance of ``bebert_ram`` (below), whose initial block zeroes the words in a
loop; any other memory keeps Amaranth's own lowering. The blocks themselves stay plain Amaranth, so
Amaranth's simulator runs them unchanged.

Contract, the same as the Amaranth memory it replaces: read data one cycle after the address while
the read enable is high (held otherwise), the word as it was before a write in the same cycle;
one write enable per ``granularity`` bits. Unlike Amaranth's read port, whose register starts
undefined, ``bebert_ram``'s starts at zero, as a block RAM's output register powers up: no X in a
four-state simulator. It maps to the same block RAM as the Amaranth memory (the resource check
synthesizes it; the read register's initial value costs nothing there, measured both ways).
"""

from __future__ import annotations

from amaranth import ClockSignal, Instance, Value
from amaranth.lib.memory import Memory

MODULE_NAME = "bebert_ram"

VERILOG = """
// @MODULE@: a RAM that starts at zero (hw/blocks/ram.py). One write port with LANES write enables
// of WIDTH / LANES bits each; one synchronous read port: read data one cycle after the address
// while ren is high, the word as it was before a write in the same cycle. The initial block zeroes
// the words and the read register: synthesizers take it as the block RAM's initial contents, and
// simulators start from zero, never X.
module @MODULE@ #(
    parameter integer WIDTH = 8,
    parameter integer DEPTH = 2,
    parameter integer ADDR_BITS = 1,
    parameter integer LANES = 1
) (
    input  wire                 clk,
    input  wire [ADDR_BITS-1:0] raddr,
    input  wire                 ren,
    output reg  [WIDTH-1:0]     rdata,
    input  wire [LANES-1:0]     we,
    input  wire [ADDR_BITS-1:0] waddr,
    input  wire [WIDTH-1:0]     wdata
);
    localparam integer LANE_BITS = WIDTH / LANES;
    reg [WIDTH-1:0] words [0:DEPTH-1];
    integer i, lane;
    initial begin
        for (i = 0; i < DEPTH; i = i + 1) words[i] = {WIDTH{1'b0}};
        rdata = {WIDTH{1'b0}};
    end
    always @(posedge clk) begin
        for (lane = 0; lane < LANES; lane = lane + 1)
            if (we[lane]) words[waddr][lane * LANE_BITS +: LANE_BITS] <= wdata[lane * LANE_BITS +: LANE_BITS];
        if (ren) rdata <= words[raddr];
    end
endmodule
""".replace("@MODULE@", MODULE_NAME)


def lowers_to_module(memory: Memory) -> bool:
    """Whether ``memory`` is one that ``bebert_ram`` implements: zero initial contents, at least two
    words, one write port and one synchronous non-transparent read port, both in ``sync``."""
    if memory.depth < 2 or len(memory.write_ports) != 1 or len(memory.read_ports) != 1:
        return False
    (write,), (read,) = memory.write_ports, memory.read_ports
    if write.domain != "sync" or read.domain != "sync" or read.transparent_for:
        return False
    # Contents not given are None (layouts) or 0; any other value keeps Amaranth's lowering.
    return all(value is None or (isinstance(value, int) and value == 0) for value in memory.init)


def ram_instance(memory: Memory) -> Instance:
    """The ``bebert_ram`` instance for a memory that ``lowers_to_module`` (it takes the memory's name)."""
    (write,), (read,) = memory.write_ports, memory.read_ports
    return Instance(
        MODULE_NAME,
        p_WIDTH=len(Value.cast(write.data)), p_DEPTH=memory.depth, p_ADDR_BITS=len(write.addr),
        p_LANES=len(write.en),
        i_clk=ClockSignal(), i_raddr=read.addr, i_ren=read.en, o_rdata=Value.cast(read.data),
        i_we=write.en, i_waddr=write.addr, i_wdata=Value.cast(write.data),
    )
