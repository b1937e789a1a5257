"""An output FIFO that a pipeline issues into on credit, so backpressure never stalls the pipeline.

A block's out pass issues a beat into a fixed-length pipeline of registered stages whose last stage
writes the FIFO. It may issue only while the FIFO has room for every beat already in flight
(``room``), so no stage ever holds: there is no global enable fanning out to every pipeline
register, and the stream's ``ready`` reaches only the FIFO. Depth: the stages in flight plus three
keeps one beat per cycle flowing while the stream takes them (measured in the LayerNorm unit's cycle
test; SyncFIFOBuffered's output register is one of its entries).
"""

from __future__ import annotations

from amaranth import Module, Value
from amaranth.lib.fifo import SyncFIFOBuffered

from ..resources import Resources, row_buffer


def fifo_depth(in_flight_stages: int) -> int:
    """Entries for a pipeline of ``in_flight_stages`` stages (its read stage included)."""
    return in_flight_stages + 3


def credited_output(m: Module, out_stream, stage_valid: Value, last_stage_data: Value, name: str = "fifo"):
    """The FIFO between a pipeline and ``out_stream``: ``stage_valid`` has one bit per stage holding a
    beat (the last is written into the FIFO), ``last_stage_data`` is that stage's payload. Returns
    ``(room, fifo)``: whether a beat may be issued this cycle, and the FIFO (``r_rdy``: a beat waits)."""
    stages = len(stage_valid)
    depth = fifo_depth(stages)
    fifo = SyncFIFOBuffered(width=len(last_stage_data), depth=depth)
    m.submodules[name] = fifo
    in_flight = sum(stage_valid[i] for i in range(stages))
    m.d.comb += [fifo.w_data.eq(last_stage_data), fifo.w_en.eq(stage_valid[-1]),
                 out_stream.payload.eq(fifo.r_data), out_stream.valid.eq(fifo.r_rdy),
                 fifo.r_en.eq(out_stream.ready)]
    return fifo.level + in_flight < depth, fifo


def fifo_resources(width: int, in_flight_stages: int) -> Resources:
    """The FIFO as Yosys maps it (7-series): its storage (depth - 1 words, read and write at their own
    addresses) in RAM32M cells with their read register, and SyncFIFOBuffered's state (the level,
    the storage's level, both pointers, the output valid)."""
    depth = fifo_depth(in_flight_stages)
    state = depth.bit_length() + (depth - 1).bit_length() + 2 * (depth - 2).bit_length() + 1
    return row_buffer(width, depth - 1, shared_address=False) + Resources(ff=state)
