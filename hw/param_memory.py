"""Parameter memories: one per resident member and per kind (weights, thresholds, affine).

A simple synchronous RAM (one read port, read data one cycle after the address; one write port
for the parameter load stream) whose initial contents come from a $readmemh image file
(images.py). It is written as a small Verilog module next to the Amaranth design and instantiated
from it, rather than as ``amaranth.lib.memory.Memory``: Amaranth emits a memory's whole contents
(even all zeros) into the netlist, and with its bundled Yosys that took over a minute for one
12 Mbit memory here, while the built-in model needs 37 Mbit. Image files keep generation fast,
let synthesis tools map the RAM to block RAM the usual way, and let a model's parameters change
without regenerating the Verilog.
"""

from __future__ import annotations

from amaranth import ClockSignal, Instance, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

MODULE_NAME = "bebert_param_memory"

VERILOG = f"""
// {MODULE_NAME}: synchronous RAM for the accelerator's parameters (hw/param_memory.py).
// Read data follows the address by one cycle; INIT names a $readmemh image.
module {MODULE_NAME} #(
    parameter integer WIDTH = 8,
    parameter integer DEPTH = 2,
    parameter integer ADDR_BITS = 1,
    parameter INIT = "image.hex"
) (
    input  wire                 clk,
    input  wire [ADDR_BITS-1:0] raddr,
    output reg  [WIDTH-1:0]     rdata,
    input  wire                 we,
    input  wire [ADDR_BITS-1:0] waddr,
    input  wire [WIDTH-1:0]     wdata
);
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    initial $readmemh(INIT, mem);
    always @(posedge clk) begin
        if (we) mem[waddr] <= wdata;
        rdata <= mem[raddr];
    end
endmodule
"""


def address_bits(depth: int) -> int:
    return max(1, (max(depth, 1) - 1).bit_length())


class ParamMemory(wiring.Component):
    """``width`` x ``depth`` RAM initialized from the image file ``init``; ports ``raddr``/``rdata``
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
        m.submodules.ram = Instance(
            MODULE_NAME,
            p_WIDTH=self.width, p_DEPTH=self.depth, p_ADDR_BITS=address_bits(self.depth), p_INIT=self.init,
            i_clk=ClockSignal(), i_raddr=self.raddr, o_rdata=self.rdata,
            i_we=self.we, i_waddr=self.waddr, i_wdata=self.wdata,
        )
        return m
