"""A block that the generated Verilog converts as a module of its own, beside the rest of the design.

Amaranth converts a design in one single-threaded pass, and the PE array and the output unit are
half of the built-in accelerator's netlist. ``OwnModule(component, name, clocked)`` elaborates as
the component itself under any platform without an ``own_module`` method (Amaranth's simulator, a
block's own tests); the generator's platform (generator/platform.py) puts in its place an instance
of a module named as Amaranth would name the submodule, which it converts in a second process. The
Verilog is the same hierarchy either way: one module per block, its ports the component's signature
members (named as ``amaranth.back.verilog`` names them), plus ``clk`` and ``rst`` when ``clocked``.
"""

from __future__ import annotations

from amaranth import ClockSignal, Elaboratable, ResetSignal, Value
from amaranth.lib import wiring


class OwnModule(Elaboratable):
    """``component``, the submodule ``name`` of the design's top, as a module of its own (module doc)."""

    def __init__(self, component: wiring.Component, name: str, clocked: bool):
        self.component, self.name, self.clocked = component, name, clocked

    def ports(self) -> dict[str, tuple[bool, Value]]:
        """The module's ports: name -> (is an input, the component's value)."""
        ports = {"__".join(map(str, path)): (member.flow == wiring.In, Value.cast(value))
                 for path, member, value in self.component.signature.flatten(self.component)}
        if self.clocked:
            ports.update(clk=(True, ClockSignal()), rst=(True, ResetSignal()))
        return ports

    def elaborate(self, platform):
        if hasattr(platform, "own_module"):
            return platform.own_module(self)
        return self.component
