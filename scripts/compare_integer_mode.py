"""The PyTorch integer mode against the NumPy simulator on the built-in model, tensor for tensor.

Runs the first N SST-2 dev sentences one at a time through both executions of the integer datapath
(bebert.integer with torch, bebert.sim with NumPy), each recording every intermediate integer
tensor, and prints how many tensors were compared and how many differ (the expected answer: 0).

    python scripts/compare_integer_mode.py [--sentences 32] [--glue-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from bebert import glue
from bebert.builtin import BUILTIN_DIR
from bebert.integer import IntegerModel
from bebert.sim.ensemble import load_simulation
from bebert.sim.tokens import SentenceTokenizer


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=32)
    parser.add_argument("--glue-dir")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    simulation = load_simulation(BUILTIN_DIR)
    integer = IntegerModel(simulation)
    recipe = simulation.manifest["recipe"]
    examples = glue.load_split("sst2", "dev", args.glue_dir)[:args.sentences]
    ids, types = SentenceTokenizer(recipe["backbone"], recipe["max_length"]).encode_examples(examples)
    compared = differing = values = 0
    for i in range(len(ids)):
        numpy_trace, torch_trace = {}, {}
        simulation.member_logits([ids[i]], [types[i]], trace=numpy_trace)
        integer.member_logits([ids[i]], [types[i]], trace=torch_trace)
        if set(numpy_trace) != set(torch_trace):
            print(f"sentence {i}: the traces name different tensors")
            return 1
        for name, value in numpy_trace.items():
            compared += 1
            values += value.size
            if not np.array_equal(value, torch_trace[name]):
                differing += 1
                print(f"sentence {i}: {name} differs")
    print(f"{len(ids)} SST-2 dev sentences, built-in model ({len(simulation.members)} members): {compared} "
          f"intermediate integer tensors ({values:,} integers) compared, {differing} differ; "
          f"{time.perf_counter() - started:.0f} s")
    return 0 if differing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
