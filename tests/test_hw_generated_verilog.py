"""The generator's Amaranth platform (hw/generator/platform.py): which memories become the hand-written
``bebert_ram``, and the check that a block converted as its own module has its instance's ports.
The RAM itself runs in the row store's Verilog tests and every co-simulation of the generated design."""

from __future__ import annotations

import pytest
from amaranth import Fragment, Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bebert.hw.blocks.own_module import OwnModule
from bebert.hw.blocks.ram import lowers_to_module
from bebert.hw.generator.platform import convert


def memory(init=(), read_ports=1, transparent=False, granularity=None, domain="sync", depth=8):
    mem = Memory(shape=8, depth=depth, init=list(init))
    write = mem.write_port(granularity=granularity)
    for _ in range(read_ports):
        mem.read_port(domain=domain, transparent_for=(write,) if transparent else ())
    return mem


@pytest.mark.parametrize("mem,taken", [
    (memory(), True),
    (memory(granularity=2), True),
    (memory(init=[0, 0, 0]), True),
    (memory(init=[0, 3]), False),  # contents: Amaranth writes them
    (memory(transparent=True), False),
    (memory(read_ports=2), False),
    (memory(domain="comb"), False),  # an asynchronous read: distributed RAM
    (memory(depth=1), False),
], ids=["zero", "lanes", "explicit_zeros", "contents", "transparent", "two_reads", "async_read", "one_word"])
def test_which_memories_become_bebert_ram(mem, taken):
    assert lowers_to_module(mem) == taken
    Fragment.get(mem, None)  # elaborated, as a design would


class Adder(wiring.Component):
    """A combinational block: no clock, no reset."""

    def __init__(self):
        super().__init__({"a": In(4), "b": In(4), "total": Out(5)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.total.eq(self.a + self.b)
        return m


class Top(wiring.Component):
    """A counter through the adder, the adder its own module (declared clocked or not)."""

    def __init__(self, clocked: bool):
        self.clocked = clocked
        super().__init__({"count": Out(4)})

    def elaborate(self, platform):
        m = Module()
        adder = Adder()
        m.submodules.adder = OwnModule(adder, "adder", clocked=self.clocked)
        m.d.comb += [adder.a.eq(self.count), adder.b.eq(1)]
        m.d.sync += self.count.eq(adder.total)
        return m


def test_own_module_joins_the_design():
    text = convert(lambda: Top(clocked=False), "top")
    assert text.count("module \\top.adder (") == 1 and "\\top.adder  adder (" in text


def test_own_module_with_the_wrong_ports_is_refused():
    with pytest.raises(RuntimeError, match=r"top\.adder has the ports \['a', 'b', 'total'\], not its instance's"):
        convert(lambda: Top(clocked=True), "top")
