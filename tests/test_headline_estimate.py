"""scripts/headline_estimate.py: a point costs as `bebert-hw dse` costs it on the same device, a
reduced grid end to end (the point it reports and the budget that stops the others), and bad input
(one sentence, exit 2, no report)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bebert.hw.design.devices import device
from bebert.hw.flows.dse import DesignPoint, binary_macs, run_points

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "headline_estimate.py"
sys.path.insert(0, str(SCRIPT.parent))
import headline_estimate as headline  # noqa: E402


def test_a_point_costs_as_the_dse_costs_it():
    """The built-in model's layers streamed 512 bits a beat from the ZCU102's DDR4 at 200 MHz: the
    same cycles, fit and rate as the DSE's device columns of that point, and a stream slower than a
    beat a cycle costs cycles against a stream that keeps up."""
    target = device("zu9eg")
    costed = headline.cost("builtin", 32, 256, 4, 8, 1024, 32, target, 200.0)
    row = run_points([DesignPoint("builtin", 32, 256, 0, 4, "multiplexed", True, 32, 4, 8, 1024)], 32,
                     synthesize=False, clock=(200.0, "given"), devices=[target]).rows[0]
    assert costed.beat_interval == pytest.approx(1024 / (19.2e9 * 8 / 200e6))
    assert costed.cycles == row["zu9eg_cycles"] > row["cycles"], "a beat every 1.33 cycles waits on the stream"
    assert (costed.verdict.fits, costed.verdict.bound) == (row["zu9eg_fits"], row["zu9eg_bound"])
    assert costed.verdict.sentences_per_s == pytest.approx(row["zu9eg_sentences_per_s"], rel=1e-3)
    assert costed.stream_bits == row["param_stream_bits"] > 0


def test_reduced_grid_reports_the_fastest_fitting_point(tmp_path, monkeypatch):
    """One array size, resident against streamed: the built-in pair's resident members overflow the
    ZU9EG's block RAM, its streamed layers fit, so the report's point is a streamed one; budgets
    aside, the resident point is the faster (no wait for a layer)."""
    monkeypatch.setattr(headline, "HEADLINE_MODELS", ("builtin",))
    monkeypatch.setattr(headline, "GRID", {"pe": (32,), "simd": (256,), "attention_lanes": (4,), "hidden_lanes": (8,),
                                           "param_width": (None, 512)})
    out = tmp_path / "headline.md"
    assert headline.main(["--tokens", "32", "--out", str(out)]) == 0
    text = out.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| builtin | "))
    assert row.startswith("| builtin | yes | PE 32 x SIMD 256, 4 attention / 8 hidden lanes | streamed, 512-bit | ")
    resident = headline.cost("builtin", 32, 256, 4, 8, None, 32, device("zu9eg"), 200.0)
    assert (resident.verdict.fits, resident.verdict.bound) == (False, "bram")
    reach = next(line for line in text.split("## How far")[1].splitlines() if line.startswith("| builtin | "))
    assert f"| resident | {resident.cycles:,} |" in reach
    assert "## builtin: the fastest fitting point of 2 costed" in text
    # what the target asks: a weight bit read a MAC, every MAC of the inference within its cycles
    macs = binary_macs(DesignPoint("builtin", 32, 256, 0, 4, "multiplexed", True, 32, 4, 8, 512).plan(), 32)
    bits_a_cycle = macs / (200e6 / headline.TARGET_PER_S)
    need = next(line for line in text.split("## What the target asks")[1].splitlines() if line.startswith("| builtin | "))
    assert need.startswith(f"| builtin | {macs / 1e9:,.1f} G | {bits_a_cycle:,.0f} | "
                           f"{100 * bits_a_cycle / (912 * 72):.0f}% | ")


@pytest.mark.parametrize("args, message", [
    (["--tokens", "0"], "--tokens must be a positive whole number, not 0."),
    (["--tokens", "100000"], "No design point of the grid can be built for bert-base:1-1-4:2 with sentences of "
                             "100000 tokens."),
    (["--device", "vu9p"], "Unknown device 'vu9p'; the devices are zu9eg, ecp5-85f."),
])
def test_bad_input_is_one_sentence(tmp_path, args, message):
    out = tmp_path / "headline.md"
    done = subprocess.run([sys.executable, str(SCRIPT), *args, "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == message
    assert not out.exists()
