"""The parameter stream of streamed parameters (``--param-width``): what the host's DMA sends.

Per sentence, every member's parameter units in the order the PE array uses them (plan.py,
``param_units``: each layer, then the head); per unit its weight words, then its threshold words,
then its affine words (images.py, ``job_images``, each from the unit's start); each word in chunks
of ``param_width`` bits, least significant first, the last chunk zero-padded. The loader
(blocks/param_loader.py) writes beat for beat into a layer slot.
"""

from __future__ import annotations

from ..design.plan import MEMORIES, AcceleratorPlan
from .images import job_images


def unit_beats(plan: AcceleratorPlan, member: int, unit) -> list[int]:
    """One parameter unit's beats for member ``member``."""
    width = plan.config.param_width
    mask = (1 << width) - 1
    images = job_images(plan, member, unit.jobs)
    beats = []
    for name in MEMORIES:
        chunks = -(-plan.memory_shapes[name][1] // width)
        for word in images.words(name):
            beats += [(word >> (c * width)) & mask for c in range(chunks)]
    assert len(beats) == plan.unit_beats(unit.name)
    return beats


def sentence_beats(plan: AcceleratorPlan) -> list[int]:
    """Every beat of one sentence: each member's units in order."""
    if not plan.config.streamed:
        raise ValueError("the plan's parameters are resident; nothing streams")
    return [beat for member in range(plan.ensemble_members) for unit in plan.param_units
            for beat in unit_beats(plan, member, unit)]
