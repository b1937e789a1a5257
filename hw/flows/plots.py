"""The design-space exploration's plots (PNG and SVG), from the rows dse.py writes to dse.csv.

* ``pareto``: throughput (sentences/s, and binary GOPS) against LUTs, the Pareto front drawn;
* ``accuracy_latency``: SST-2 dev accuracy against latency for 1, 2 and 4 members, time-multiplexed
  and replicated (accuracies from the ensemble experiments' report, hw.cli.ACCURACY_REPORT);
* ``resources_by_block``: LUTs per block (the encoder's units in groups) of each design point;
* ``cycles_by_layer``: cycles of one inference per layer type, and the PE array's waits for the
  encoder's units;
* ``weights_on_chip``: parameter memory bits against the block RAM of each target device;
* ``pareto_<device>``: per target device, sentences/s at its clock against its LUT budget used,
  the points that fit filled and their Pareto front drawn, the others marked with what stops them.

Resources come from synthesis where the sweep ran it, else from the resource model (the plots
say which).
"""

from __future__ import annotations

from pathlib import Path

from ..design.devices import DEVICES, Device

# Block RAM capacity in bits of the target devices (hw/design/devices.py).
BRAM_BITS = {target.name: target.bram * (18 if target.fabric == "ecp5" else 36) * 1024 for target in DEVICES.values()}
# The bars' series: the matrix-product blocks one by one, the encoder's in groups.
BLOCK_GROUPS = {
    "controller": ("controller",), "buffers": ("buffers",), "pe_array": ("pe_array",), "output_unit": ("output_unit",),
    "ensemble_unit": ("ensemble_unit",), "weights_memory": ("weights_memory",),
    "thresholds_memory": ("thresholds_memory",), "affine_memory": ("affine_memory",),
    "attention (scores, softmax, context, staircase)": ("attention_pipeline", "attention_scores", "softmax",
                                                        "attention_context", "context_staircase"),
    "residual stream and LayerNorm": ("residual_norm", "residual_stream", "layer_norm", "tag_queue"),
    "sequencer, row stores, gearboxes": ("sequencer", "codes_store", "context_store", "key_gearbox", "value_gearbox",
                                         "query_gearbox", "residual_gearbox"),
    "encoder memories": ("norm_memory", "hidden_thresholds_memory", "exp_table_memory", "context_thresholds_memory"),
}
LAYER_KINDS = ("qkv", "attention_output", "ffn", "head")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path, name: str) -> list[Path]:
    paths = [out / f"{name}.png", out / f"{name}.svg"]
    for path in paths:
        fig.savefig(path, dpi=130, bbox_inches="tight")
    _pyplot().close(fig)
    return paths


def _synthesized(row: dict) -> bool:
    return str(row.get("synthesized")) == "True"


def _lut(row: dict, block: str | None = None) -> float:
    """Synthesized LUTs where the point was synthesized, else the model's (of one block, or all)."""
    key = f"{block}_lut" if block else "lut"
    value = row.get(f"synth_{key}") if _synthesized(row) else None
    return float(value if value not in (None, "") else row.get(f"model_{key}") or 0)


def _label(row: dict) -> str:
    held = f"s{row['param_width']}" if int(row.get("param_width") or 0) else f"r{row['resident']}"
    return f"PE{row['pe']}xSIMD{row['simd']} {held} a{row['act_bits']} {row['mapping'][:5]}"


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated by a cheaper-or-equal point with higher-or-equal throughput (x: cost, y: gain)."""
    front, best = [], float("-inf")
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def plot_pareto(rows: list[dict], out: Path) -> list[Path]:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, metric, label in ((axes[0], "sentences_per_s", "sentences / s"), (axes[1], "binary_gops", "binary GOPS")):
        for n, model in enumerate(sorted({r["model"] for r in rows})):
            color = f"C{n}"
            for mapping, marker in (("multiplexed", "o"), ("replicated", "^")):
                mine = [r for r in rows if r["model"] == model and r["mapping"] == mapping]
                if not mine:
                    continue
                xs, ys = [_lut(r) for r in mine], [float(r[metric]) for r in mine]
                for synthesized in (True, False):
                    part = [(x, y) for x, y, r in zip(xs, ys, mine) if _synthesized(r) == synthesized]
                    if part:
                        ax.scatter([p[0] for p in part], [p[1] for p in part], marker=marker, alpha=0.8,
                                   facecolors=color if synthesized else "none", edgecolors=color,
                                   label=f"{model}, {mapping}" + ("" if synthesized else " (model)"))
                front = pareto_front(list(zip(xs, ys)))
                ax.plot([p[0] for p in front], [p[1] for p in front], "--", color=color, linewidth=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("LUTs (filled: synthesized; hollow: resource model)")
        ax.set_ylabel(f"{label} at {float(rows[0]['clock_mhz']):.0f} MHz")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Throughput against LUTs ({_scope(rows[0])}), {rows[0]['tokens']}-token sentences, clock: "
                 f"{rows[0]['clock_source']} (dashed: Pareto front)", fontsize=9)
    return _save(fig, out, "pareto")


def plot_accuracy_latency(latencies: list[dict], accuracy: dict[int, float], tokens: int, clock_mhz: float,
                          out: Path) -> list[Path]:
    """SST-2 dev accuracy by member count (the ensemble experiments) against the latency of that many
    members at each PE x SIMD (dse.member_latencies)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    for members in sorted(accuracy):
        for mapping, marker in (("multiplexed", "o"), ("replicated", "^")):
            mine = [r for r in latencies if r["members"] == members and r["mapping"] == mapping]
            if mine:
                ax.scatter([r["latency_ms"] for r in mine], [accuracy[members]] * len(mine), marker=marker,
                           alpha=0.7, label=f"{members} member(s), {mapping}")
    ax.set_xscale("log")
    ax.set_xlabel(f"latency per {tokens}-token sentence (ms at {clock_mhz:.0f} MHz), one point per PE x SIMD")
    ax.set_ylabel("SST-2 dev accuracy (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Accuracy against latency (BEBERT 1-1-4 on MiniLM)")
    return _save(fig, out, "accuracy_latency")


def _stacked_bars(rows: list[dict], series: list[tuple[str, list[float]]], ylabel: str, title: str, out: Path,
                  name: str, log: bool = False) -> list[Path]:
    """One bar per design point, stacked from ``series`` (label, one value per row)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(rows)), 4.8))
    bottom = [0.0] * len(rows)
    colors = plt.get_cmap("tab20" if len(series) > 10 else "tab10")
    for i, (label, values) in enumerate(series):
        ax.bar(range(len(rows)), values, bottom=bottom, label=label, color=colors(i))
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xticks(range(len(rows)), [f"{'' if _synthesized(r) else '(model) '}{r['model']} {_label(r)}" for r in rows],
                  rotation=90, fontsize=6)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    ax.set_title(title)
    return _save(fig, out, name)


def _scope(row: dict) -> str:
    return "whole inferences, encoder on chip" if str(row.get("encoder")) == "True" else \
        "matrix products alone (host: attention, LayerNorms)"


def plot_resources_by_block(rows: list[dict], out: Path) -> list[Path]:
    series = [(group, [sum(_lut(r, block) for block in blocks) for r in rows])
              for group, blocks in BLOCK_GROUPS.items()]
    series = [(label, values) for label, values in series if any(values)]
    return _stacked_bars(rows, series, "LUTs (synthesized; '(model)': resource model)",
                         f"LUTs by block ({_scope(rows[0])})", out, "resources_by_block")


def plot_cycles_by_layer(rows: list[dict], out: Path) -> list[Path]:
    series = [(kind, [float(r[f"cycles_{kind}"]) for r in rows]) for kind in LAYER_KINDS]
    series.append(("PE array waits for the encoder's units", [float(r.get("cycles_waits") or 0) for r in rows]))
    series.append(("parameter_load", [float(r["parameter_load_cycles"]) for r in rows]))
    series = [(label, values) for label, values in series if any(values)]
    return _stacked_bars(rows, series, f"cycles per {rows[0]['tokens']}-token sentence",
                         f"Cycles by layer type (cycle model; {_scope(rows[0])})", out, "cycles_by_layer", log=True)


def plot_weights_on_chip(rows: list[dict], out: Path) -> list[Path]:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    models = sorted({r["model"] for r in rows})
    for i, model in enumerate(models):
        mine = sorted({(int(r["resident"]) * int(r["copies"]), float(r["memory_bits"])) for r in rows
                       if r["model"] == model})
        ax.scatter([i + 0.1 * k for k, _ in mine], [bits / 1e6 for _, bits in mine], s=40)
        for k, bits in mine:
            ax.annotate(f"{k} member(s)", (i + 0.1 * k, bits / 1e6), fontsize=6, xytext=(4, 0),
                        textcoords="offset points")
    for name, bits in BRAM_BITS.items():
        ax.axhline(bits / 1e6, linestyle="--", linewidth=1)
        ax.annotate(f"{name} block RAM", (0, bits / 1e6), fontsize=7, xytext=(0, 3), textcoords="offset points")
    ax.set_xticks(range(len(models)), models, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("parameter memory on chip (Mbit)")
    ax.set_title("Do the members' parameters fit on chip?")
    return _save(fig, out, "weights_on_chip")


def plot_device_pareto(rows: list[dict], target: Device, out: Path) -> list[Path]:
    """Sentences/s at the device's clock against the share of its LUTs used: the points that fit
    (filled, Pareto front dashed) and those that do not (grey crosses, at the rate they would reach,
    labelled with the budget that stops them)."""
    plt = _pyplot()
    key = target.column
    fig, ax = plt.subplots(figsize=(7, 4.8))
    fitting = [r for r in rows if str(r[f"{key}_fits"]) == "True"]
    for n, model in enumerate(sorted({r["model"] for r in rows})):
        mine = [r for r in fitting if r["model"] == model]
        if mine:
            xs = [100 * float(r[f"{key}_lut_share"]) for r in mine]
            ys = [float(r[f"{key}_sentences_per_s"]) for r in mine]
            ax.scatter(xs, ys, color=f"C{n}", label=f"{model} (fits)")
            front = pareto_front(list(zip(xs, ys)))
            ax.plot([p[0] for p in front], [p[1] for p in front], "--", color=f"C{n}", linewidth=1)
    for bound in sorted({r[f"{key}_bound"] for r in rows if str(r[f"{key}_fits"]) != "True"}):
        stopped = [r for r in rows if str(r[f"{key}_fits"]) != "True" and r[f"{key}_bound"] == bound]
        rate = [float(r[f"{key}_clock_mhz"]) * 1e6 / float(r.get(f"{key}_cycles") or r["cycles"]) for r in stopped]
        ax.scatter([100 * float(r[f"{key}_lut_share"]) for r in stopped], rate, marker="x", color="0.6",
                   label=f"does not fit: {target.units[bound]} ({len(stopped)})")
    ax.axvline(100, color="k", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"{target.units['lut']}s used, % of the {target.part}'s {target.lut:,}")
    ax.set_ylabel(f"sentences / s at {float(rows[0][f'{key}_clock_mhz']):.1f} MHz")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"{target.board} ({target.part}, {target.memory}): {len(fitting)} of {len(rows)} points fit "
                 f"({_scope(rows[0])})", fontsize=9)
    return _save(fig, out, f"pareto_{target.name}")


def write_plots(rows: list[dict], out: Path, accuracy: dict[int, float] | None = None,
                latencies: list[dict] | None = None, devices: list[Device] | None = None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = plot_pareto(rows, out) + plot_resources_by_block(rows, out) + plot_cycles_by_layer(rows, out)
    paths += plot_weights_on_chip(rows, out)
    for target in DEVICES.values() if devices is None else devices:
        paths += plot_device_pareto(rows, target, out)
    if accuracy and latencies:
        paths += plot_accuracy_latency(latencies, accuracy, rows[0]["tokens"], rows[0]["clock_mhz"], out)
    return paths
