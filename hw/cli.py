"""``bebert-hw``: the hardware side's command line.

The accelerator generator (``gen``), the simulator (``sim``) and the design-space exploration
(``dse``) join here as they land; today the command only describes itself.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="bebert-hw",
        description="Hardware flow for BEBERT artifacts: bit-accurate simulation, Verilog generation "
                    "(Amaranth), cocotb/Verilator co-simulation, cost models and design-space exploration. "
                    "No subcommand is available yet: the simulator, `gen` and `dse` are being built.",
    )


def main(argv=None) -> int:
    build_parser().print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
