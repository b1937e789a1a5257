"""Trace files: every intermediate integer tensor of one sentence, the RTL testbenches' golden vectors.

One .npz file (written atomically: a temporary name, then a rename) holding one int64 array per
datapath name (``m0.layer3.ffn_in.acc``, ..., ``ensemble.scores``) and a ``__meta__`` entry with
the JSON description: the artifact, the sentence, the fixed-point constants, the engine.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from bebert.errors import BebertError

META = "__meta__"
TRACE_FORMAT = "bebert-trace/1"


class TraceError(BebertError):
    pass


def write_trace(path, tensors: dict[str, np.ndarray], meta: dict) -> Path:
    path = Path(path)
    if path.suffix != ".npz":
        raise TraceError(f"Trace file {path} must end in .npz.")
    if not path.parent.is_dir():
        raise TraceError(f"Cannot write the trace {path}: folder {path.parent} does not exist.")
    arrays = {name: np.asarray(value, dtype=np.int64) for name, value in tensors.items()}
    arrays[META] = np.frombuffer(json.dumps({"format": TRACE_FORMAT, **meta}).encode(), dtype=np.uint8)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
    return path


def read_trace(path) -> tuple[dict[str, np.ndarray], dict]:
    path = Path(path)
    if not path.is_file():
        raise TraceError(f"Trace file {path} does not exist.")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise TraceError(f"Trace file {path} is not a readable .npz file ({exc.__class__.__name__}).") from None
    if META not in arrays:
        raise TraceError(f"Trace file {path} has no {META} entry: it is not a bebert trace.")
    meta = json.loads(arrays.pop(META).tobytes().decode())
    if meta.get("format") != TRACE_FORMAT:
        raise TraceError(f"Trace file {path} is in format {meta.get('format')!r}, not {TRACE_FORMAT!r}.")
    return arrays, meta
