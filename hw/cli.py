"""``bebert-hw``: the hardware side's command line.

``sim`` runs the bit-accurate simulator (bebert.sim) on an artifact, by default the built-in model;
``counts`` prints operation counts; ``gen`` writes the accelerator's Verilog, memory images and
report; ``cosim`` runs sentences through that Verilog (or Yosys' netlist of it) in Verilator or
Icarus Verilog (cocotb) against the simulator.
``dse`` sweeps the design space: cycle and resource models, real synthesis, a CSV and plots.
Every problem with the user's input is one ``bebert-hw: error:`` sentence and exit status 2.
Nothing here imports torch, except the optional comparison with the PyTorch model.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

from bebert.errors import BebertError, run_command

# Where the DSE's accuracy plot reads SST-2's accuracy by member count: the first protocol's report,
# until scripts/bebert_results.py has run SST-2 under the second (results/bebert.md).
ACCURACY_REPORT = "results/bebert-2026-11.md"


DEFAULT_PARAM_WIDTH = 128  # bits a beat of the parameter stream when --param-width is given without a width
PARAM_WIDTH_HELP = ("stream every layer's parameters in through a parameter stream of this many bits (32 to 1024, "
                    f"a power of two; {DEFAULT_PARAM_WIDTH} when the option is given without a width), into two layer "
                    "slots while the layer before computes, instead of holding every member resident (the encoder "
                    "on chip; default: resident)")

def _load(args):
    from bebert.builtin import BUILTIN_DIR
    from bebert.sim.ensemble import load_simulation
    from bebert.sim.tokens import SentenceTokenizer

    directory = args.artifact or BUILTIN_DIR
    started = time.perf_counter()
    simulation = load_simulation(directory)
    compiled_s = time.perf_counter() - started
    recipe = simulation.manifest.get("recipe", {})
    tokenizer = SentenceTokenizer(args.backbone or recipe.get("backbone"), recipe.get("max_length", 128))
    name = "built-in model" if args.artifact is None else "artifact"
    print(f"simulator: {name} {simulation.path}, {len(simulation.members)} member(s) "
          f"{simulation.manifest['bits']['label']}, joined by {simulation.combine}; engine {args.engine}; "
          f"compiled in {compiled_s:.1f} s")
    return simulation, tokenizer


def cmd_sim(args) -> int:
    if args.engine not in ("fast", "literal"):
        raise BebertError(f"--engine must be fast or literal, not {args.engine!r}.")
    if args.sentence is not None:
        if not args.sentence.strip() or (args.pair is not None and not args.pair.strip()):
            raise BebertError("The sentence is empty; give the simulator some words.")
        return _sim_sentence(args)
    if args.trace is not None:
        raise BebertError("--trace records one sentence; give it with --sentence.")
    return _sim_dataset(args)


def _sim_sentence(args) -> int:
    import numpy as np

    from bebert.sim.fixed import FRAC
    from bebert.sim.trace import write_trace

    simulation, tokenizer = _load(args)
    ids, types = tokenizer.encode(args.sentence, args.pair)
    trace = {} if args.trace else None
    logits = simulation.member_logits([ids], [types], engine=args.engine, trace=trace)
    answer = simulation.join(logits, trace)
    print(f"  {len(ids)} tokens: {ids}")
    for i, (member, member_logits) in enumerate(zip(simulation.members, logits[:, 0])):
        shown = ", ".join(f"{v / 2**FRAC:+.4f}" for v in member_logits)
        print(f"  member {i + 1} (alpha {member.weight:.3f}): logits [{shown}] (fixed point {member_logits.tolist()})")
    task = simulation.manifest.get("task", {}).get("name", "?")
    print(f"  ensemble answer: {answer[0]}" + (f" ({'positive' if answer[0] == 1 else 'negative'})"
                                               if task == "sst2" else ""))
    if trace is not None:
        meta = {"artifact": str(simulation.path), "sentence": args.sentence, "pair": args.pair, "engine": args.engine,
                "frac": FRAC, "answer": int(answer[0]),
                "tensor_file_sha256": simulation.manifest["tensor_file"]["sha256"]}
        path = write_trace(args.trace, {**trace, "ensemble.answer": np.array(answer)}, meta)
        print(f"  trace: {len(trace) + 1} integer tensors written to {path}")
    return 0


def _sim_dataset(args) -> int:
    import numpy as np

    from bebert import glue

    simulation, tokenizer = _load(args)
    task = args.task or simulation.manifest.get("task", {}).get("name")
    if task is None:
        raise BebertError(f"Artifact {simulation.path} names no task; pass --task.")
    spec = glue.task_spec(task)
    examples = glue.load_split(spec.name, args.split, args.glue_dir)
    if args.limit is not None:
        if args.limit < 1:
            raise BebertError(f"--limit must be a positive number of sentences, not {args.limit}.")
        examples = examples[:args.limit]
    ids, types = tokenizer.encode_examples(examples)
    labels = np.array([e.label for e in examples])
    started = time.perf_counter()
    logits = simulation.member_logits(ids, types, engine=args.engine, progress=True)
    answers = simulation.join(logits)
    took = time.perf_counter() - started
    metric = spec.primary_metric

    def score(predictions) -> str:
        return f"{metric} {glue.compute_metrics(spec.name, predictions, labels)[metric]:.2f}"

    print(f"  {spec.name} {args.split}: {len(examples)} sentences in {took:.1f} s "
          f"({len(examples) / took:.1f} sentences/s)")
    if len(simulation.members) > 1:
        for i, member_logits in enumerate(logits):
            member_answers = member_logits[:, 0] if spec.is_regression else member_logits.argmax(-1)
            print(f"  member {i + 1}: {score(member_answers)}")
    print(f"  integer datapath (this simulator): {score(answers)}")
    if not args.no_compare:
        reference = _pytorch_answers(simulation, examples, spec)
        same = int((reference == answers).sum()) if not spec.is_regression else None
        agreement = (f"prediction agreement {100.0 * same / len(examples):.2f}% ({same}/{len(examples)})"
                     if same is not None else "")
        print(f"  PyTorch model (fake-quantized float): {score(reference)}; {agreement}")
    return 0


def _pytorch_answers(simulation, examples, spec):
    """The trained model's own answers (the float, fake-quantized forward pass) on the same sentences."""
    from bebert.ensemble import artifact_predictions, encode_for_artifact
    from bebert.export import load_ensemble

    members, manifest = load_ensemble(simulation.path)
    split = encode_for_artifact(manifest, examples, spec.is_regression)
    answers, _ = artifact_predictions(members, split, simulation.combine, spec.is_regression)
    return answers


def cmd_counts(args) -> int:
    """Per-layer operation counts and the stored size of an artifact's members (sim/counts.py)."""
    from bebert.artifact import read_artifact
    from bebert.builtin import BUILTIN_DIR
    from bebert.sim.counts import FP32, Bits, inference_counts, stored_bytes, total

    if args.tokens < 1:
        raise BebertError(f"--tokens must be a positive sentence length, not {args.tokens}.")
    artifact = read_artifact(args.artifact or BUILTIN_DIR)
    manifest = artifact.manifest
    dims, bits = manifest["model"], Bits.from_manifest(manifest)
    members = len(manifest["members"])
    layers = inference_counts(dims, args.tokens, bits)
    print(f"{artifact.path}: {members} member(s) {manifest['bits']['label']}, one sentence of {args.tokens} tokens, "
          "per member")
    print(f"  {'layer':<12} {'MACs':>12} {'binary ops':>14} {'element ops':>12} {'FLOPs':>12}")
    for layer in layers:
        elements = sum(layer.elementwise.values())
        print(f"  {layer.name:<12} {layer.macs:>12,} {layer.bops:>14,} {elements:>12,} {layer.flops:>12,.0f}")
    one = total(layers)
    fp32 = total(inference_counts(dims, args.tokens, FP32))
    size = stored_bytes(dims, bits)
    print(f"  per member: {one['macs']:,} MACs, {one['bops']:,} binary ops, {one['flops'] / 1e9:.3f} GFLOPs "
          f"(fp32 model: {fp32['flops'] / 1e9:.3f}), weights {size / 2**20:.2f} MiB (fp32: "
          f"{stored_bytes(dims, FP32) / 2**20:.2f} MiB)")
    print(f"  ensemble of {members}: {members * one['flops'] / 1e9:.3f} GFLOPs "
          f"({fp32['flops'] / (members * one['flops']):.1f}x fewer than fp32), {members * size / 2**20:.2f} MiB "
          f"({stored_bytes(dims, FP32) / (members * size):.1f}x smaller)")
    return 0


def cmd_gen(args) -> int:
    """Verilog, memory images and report of the accelerator for an artifact (hw/generator/gen.py)."""
    from pathlib import Path

    import yaml

    from bebert.builtin import BUILTIN_DIR
    from bebert.hw.design.config import HardwareConfig
    from bebert.hw.axi_system import artifact_id
    from bebert.hw.generator.gen import REPORT_FILE, configure, encoder_build, generate
    from bebert.hw.design.plan import plan_for
    from bebert.sim.ensemble import load_simulation

    if args.tokens < 1:
        raise BebertError(f"--tokens must be a positive sentence length, not {args.tokens}.")
    started = time.perf_counter()
    HardwareConfig(args.pe, args.simd, args.members, args.act_bits or 1, args.param_width)  # refuse bad numbers early
    simulation = load_simulation(args.artifact or BUILTIN_DIR)
    plan = plan_for(simulation, configure(simulation, args.pe, args.simd, args.members, args.act_bits, args.param_width))
    units = (None if args.products_only
             else encoder_build(plan, args.max_tokens, args.attention_lanes, args.hidden_lanes))
    files = generate(plan, Path(args.out), force=args.force, tokens=args.tokens, units=units, interface=args.interface,
                     artifact=artifact_id(simulation.path) if args.interface == "axi" else 0)
    cfg = plan.config
    kind = "matrix-product accelerator" if args.products_only else "encoder on chip"
    held = (f"layers streamed {cfg.param_width} bits a beat into two slots" if cfg.streamed
            else f"{plan.resident} resident")
    print(f"{kind} for {simulation.path} ({plan.ensemble_members} member(s), {held}): "
          f"PE {cfg.pe} x SIMD {cfg.simd}, {cfg.act_bits}-bit activations")
    if units is not None:
        print(f"  sentences of up to {args.max_tokens} tokens, {args.attention_lanes} attention lanes, "
              f"{args.hidden_lanes} hidden lanes; "
              + ("AXI4-Lite registers and AXI4-Stream data (register map: report.yaml, docs/accelerator.md)"
                 if args.interface == "axi" else "its own valid/ready ports"))
    for path in files:
        if path.is_dir():  # the images: one file per block-RAM tile
            tiles = [f for f in path.rglob("*") if f.is_file()]
            print(f"  wrote {path}/ ({len(tiles):,} files, {sum(f.stat().st_size for f in tiles) / 2**20:.2f} MiB)")
        else:
            print(f"  wrote {path} ({path.stat().st_size / 2**20:.2f} MiB)")
    report = yaml.safe_load((Path(args.out) / REPORT_FILE).read_text())
    cycles = report["cycles"]
    print(f"  cycles per inference of {cycles['tokens']} tokens: {cycles['per_inference']:,} "
          f"(parameter memories {report['memory_bits_total'] / 1e6:.1f} Mbit)")
    print(f"  done in {time.perf_counter() - started:.1f} s")
    return 0


def cmd_cosim(args) -> int:
    """Generate the accelerator, verilate it and run GLUE sentences through it against the simulator."""
    from pathlib import Path

    from bebert import glue
    from bebert.builtin import BUILTIN_DIR
    from bebert.hw.design.config import HardwareConfig
    from bebert.hw.flows.cosim import cosimulate, cosimulate_encoder, require_simulator
    from bebert.hw.generator.gen import INTERFACES, configure, encoder_build
    from bebert.hw.design.plan import plan_for
    from bebert.sim.ensemble import load_simulation
    from bebert.sim.tokens import SentenceTokenizer

    if args.sentences < 1:
        raise BebertError(f"--sentences must be a positive count, not {args.sentences}.")
    if not 0 <= args.gap < 1:
        raise BebertError(f"--gap is a probability of a stall, in [0, 1), not {args.gap}.")
    require_simulator(args.simulator, args.waves)
    HardwareConfig(args.pe, args.simd, args.members, args.act_bits or 1, args.param_width)  # refuse bad numbers early
    if args.beat_interval < 1:
        raise BebertError(f"--beat-interval is cycles between parameter beats, at least 1, not {args.beat_interval}.")
    artifact = Path(args.artifact or BUILTIN_DIR)
    simulation = load_simulation(artifact)
    config = configure(simulation, args.pe, args.simd, args.members, args.act_bits, args.param_width)
    recipe = simulation.manifest.get("recipe", {})
    tokenizer = SentenceTokenizer(recipe.get("backbone"), recipe.get("max_length", 128))
    task = simulation.manifest["task"]["name"]
    examples = glue.load_split(task, "dev", args.glue_dir)[:args.sentences]
    encoded = [tokenizer.encode(e.text_a, e.text_b) for e in examples]
    if args.interface not in INTERFACES:
        raise BebertError(f"--interface must be one of {', '.join(INTERFACES)}, not {args.interface!r}.")
    if args.interface == "axi" and args.beat_interval != 1:
        raise BebertError("--beat-interval throttles the native testbench's parameter source; the AXI testbench's "
                          "pauses are random (--gap).")
    if args.interface == "axi" and (args.products_only or args.waves):
        raise BebertError("--interface axi runs the encoder on chip in its AXI shell, without waveforms; drop "
                          "--products-only and --waves.")
    if not args.products_only:
        if args.netlist:
            raise BebertError("--netlist simulates the matrix-product accelerator only; add --products-only.")
        encoder_build(plan_for(simulation, config), args.max_tokens, args.attention_lanes, args.hidden_lanes)
        for i, (ids, _) in enumerate(encoded):
            if len(ids) > args.max_tokens:
                raise BebertError(f"Dev sentence {i + 1} has {len(ids)} tokens, more than the build's --max-tokens "
                                  f"{args.max_tokens}; raise --max-tokens or take fewer --sentences.")
    what = f"Yosys' {args.netlist} netlist" if args.netlist else "the RTL"
    kind = (f"the encoder on chip (up to {args.max_tokens} tokens, {args.attention_lanes} attention lanes, "
            f"{args.hidden_lanes} hidden lanes)" if not args.products_only else "the matrix-product accelerator")
    print(f"co-simulation of {kind}: {task} dev, {len(encoded)} sentence(s), PE {config.pe} x SIMD {config.simd}, "
          f"{config.act_bits}-bit activations, {what} in {args.simulator}; Verilog, images and the build in "
          f"{args.out}/ (the first build of a configuration takes minutes)")
    started = time.perf_counter()
    if args.interface == "axi":
        results = cosimulate_encoder(artifact, config, encoded, Path(args.out), args.max_tokens, args.attention_lanes,
                                     args.hidden_lanes, testcase="sentences_over_axi", gap=args.gap,
                                     simulator=args.simulator, interface="axi")
        checked = "every class (taken over AXI4-Stream) equal to the simulator's, the cycle counter (read over AXI4-Lite)"
    elif not args.products_only:
        results = cosimulate_encoder(artifact, config, encoded, Path(args.out), args.max_tokens, args.attention_lanes,
                                     args.hidden_lanes, gap=args.gap, waves=args.waves, simulator=args.simulator,
                                     beat_interval=args.beat_interval)
        checked = "every codes row, context row, member's logits and class equal to the simulator's, cycle counter"
    else:
        results = cosimulate(artifact, config, encoded, Path(args.out), gap=args.gap, waves=args.waves,
                             simulator=args.simulator, synthesized=args.netlist)
        checked = "every streamed result and class equal to the simulator's, cycle counter"
    records = results["sentences"]
    for i, r in enumerate(records):
        stalls = f", stalls {r['stalls']:,}" if "stalls" in r else ""
        print(f"  sentence {i + 1:>3}: {r['tokens']:>3} tokens, class {r['answer']} (simulator {r['simulator_answer']}), "
              f"cycles {r['cycles']:,} (model {r['model_cycles']:,}){stalls}, {r['wall_s']:.1f} s")
    # the products' counter leaves the host's stalls out; the encoder's (and its AXI shell's) counts them
    simulated = sum(r["cycles"] + (r.get("stalls", 0) if args.products_only else 0) for r in records)
    wall = sum(r["wall_s"] for r in records)
    off = [i + 1 for i, r in enumerate(records) if r["cycles"] != r["model_cycles"]]
    if off and not args.gap:
        raise BebertError(f"The cycle counter differs from the model on sentence(s) {', '.join(map(str, off))}.")
    print(f"all {len(records)} sentence(s): {checked} "
          + ("above the model by the cycles the host's pauses cost (--gap)" if off else "equal to the model")
          + f"; {simulated:,} cycles simulated at {simulated / wall:,.0f} cycles/s; "
          f"{time.perf_counter() - started:.0f} s in all")
    return 0


def _int_list(text: str | None, option: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise BebertError(f"{option} takes comma-separated whole numbers, for example 16,32,64; not {text!r}.") from None


def cmd_dse(args) -> int:
    """Sweep the design space: cycle and resource models, synthesis, the CSV and the plots (hw/flows/dse.py)."""
    from pathlib import Path

    from bebert.hw.design.devices import DEVICES, device
    from bebert.hw.flows.dse import (device_clock, ensemble_accuracy, load_sweep, luts, measured_clock,
                                     member_latencies, run_sweep, write_csv)
    from bebert.hw.flows.plots import write_plots

    started = time.perf_counter()
    overrides = {"models": args.models.split(",") if args.models else None,
                 "pe": _int_list(args.pe, "--pe"), "simd": _int_list(args.simd, "--simd"),
                 "resident": _int_list(args.resident, "--resident"), "act_bits": _int_list(args.act_bits, "--act-bits"),
                 "mapping": args.mapping.split(",") if args.mapping else None, "tokens": args.tokens,
                 "clock_mhz": args.clock_mhz, "synth_max_mbit": args.synth_max_mbit,
                 "encoder": False if args.products_only else None, "max_tokens": args.max_tokens,
                 "attention_lanes": _int_list(args.attention_lanes, "--attention-lanes"),
                 "hidden_lanes": _int_list(args.hidden_lanes, "--hidden-lanes"),
                 "param_width": _int_list(args.param_width, "--param-width")}
    devices = [device(name) for name in args.device.split(",")] if args.device else list(DEVICES.values())
    sweep = load_sweep(Path(args.spec) if args.spec else None, overrides)
    clock = (sweep["clock_mhz"], "given") if sweep["clock_mhz"] else measured_clock()
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise BebertError(f"Output {out} is a file, not a folder.")
    result = run_sweep(sweep, synthesize=not args.no_synth, scheduler=args.scheduler, workers=args.workers,
                       clock=clock, devices=devices)
    csv_path = write_csv(result.rows, out / "dse.csv")
    accuracy = ensemble_accuracy(Path(args.accuracy)) if args.accuracy else {}
    plots = write_plots(result.rows, out, accuracy, member_latencies(sweep, clock[0]), devices)
    scope = ("whole inferences, the encoder on chip" if sweep["encoder"] else
             "the matrix products alone (the host runs attention and LayerNorms)")
    print(f"design-space exploration of {scope}: {len(result.rows)} point(s) ({len(result.skipped)} skipped), clock "
          f"{clock[0]:.1f} MHz ({clock[1]}); {'synthesis' if result.synthesized else 'resource model only'}; "
          f"{time.perf_counter() - started:.0f} s in all, {result.synthesis_seconds:.0f} s of Yosys for designs not "
          "in the cache")
    for point, reason in result.skipped[:5]:
        print(f"  skipped {point.model} PE {point.pe} SIMD {point.simd} resident {point.resident} "
              f"param width {point.param_width} "
              f"act bits {point.act_bits} {point.mapping}: {reason}")
    if len(result.skipped) > 5:
        print(f"  ... and {len(result.skipped) - 5} more skipped")
    synthesized = sum(1 for r in result.rows if r["synthesized"])
    print(f"  {synthesized} point(s) synthesized, {len(result.rows) - synthesized} with the resource model only "
          f"(more than {sweep['synth_max_mbit']} Mbit of parameters on chip, or --no-synth)")
    checked = [r for r in result.rows if r["synthesized"]]
    if checked:
        def errors(field):
            return sorted(abs(r[f"model_{field}"] - r[f"synth_{field}"]) / max(r[f"synth_{field}"], 1) for r in checked)

        lut, ff = errors("lut"), errors("ff")
        exact = sum(1 for r in checked if (r["model_bram36"], r["model_bram18"]) == (r["synth_bram36"], r["synth_bram18"]))
        print(f"  resource model against synthesis over the {len(checked)} synthesized point(s): LUT error median "
              f"{100 * lut[len(lut) // 2]:.1f}%, worst {100 * lut[-1]:.1f}%; FF worst {100 * ff[-1]:.1f}%; "
              f"block RAM exact in {exact} of {len(checked)}")
    best = max(result.rows, key=lambda r: r["sentences_per_s"] / max(luts(r), 1))
    print(f"  most sentences/s per LUT: {best['model']} PE {best['pe']} SIMD {best['simd']} resident "
          f"{best['resident']} {best['mapping']}: {best['sentences_per_s']:.1f} sentences/s, "
          f"{luts(best):,.0f} LUTs ({'synthesized' if best['synthesized'] else 'model'})")
    for target in devices:
        print("  " + device_summary(target, device_clock(target, clock), result.rows))
    print(f"  wrote {csv_path}")
    for path in plots:
        print(f"  wrote {path}")
    return 0


def device_summary(target, clock: tuple[float, str], rows: list[dict]) -> str:
    """One device's verdict on a sweep: how many points fit, the fastest that does, what stops the rest."""
    key = target.column
    head = (f"{target.name} ({target.board}, {target.part}; {target.memory}, {target.bandwidth_gb_s:g} GB/s; "
            f"{clock[0]:.1f} MHz, {clock[1]}): ")
    fitting = [r for r in rows if r[f"{key}_fits"]]
    stopped = Counter(target.units[r[f"{key}_bound"]] for r in rows if not r[f"{key}_fits"])
    rest = ", ".join(f"{unit} {count}" for unit, count in stopped.most_common())
    if not fitting:
        return head + f"no point fits (stopped by {rest})"
    best = max(fitting, key=lambda r: r[f"{key}_sentences_per_s"])
    shares = ", ".join(f"{target.units[f]} {100 * best[f'{key}_{f}_share']:.0f}%" for f in ("lut", "ff", "bram", "dsp"))
    held = f", layers streamed {best['param_width']} bits a beat" if best.get("param_width") else ""
    return (head + f"{len(fitting)} of {len(rows)} point(s) fit; fastest {best['model']} PE {best['pe']} SIMD "
            f"{best['simd']} {best['mapping']}{held}: {best[f'{key}_sentences_per_s']:.1f} sentences/s "
            f"({best[f'{key}_bound']}-bound" + ("" if best[f"{key}_bandwidth_share"] is not None else
                                                 "; the host's traffic of the products alone not assessed")
            + f"), {shares}" + (f"; the others stopped by {rest}" if rest else ""))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bebert-hw",
        description="Hardware flow for BEBERT artifacts: bit-accurate simulation of the integer datapath; "
                    "Verilog generation of the accelerator (Amaranth) and its co-simulation (Verilator, Icarus); "
                    "resource, cycle and timing estimates and the design-space exploration.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sim", help="run the integer-datapath simulator on a GLUE split or one sentence")
    p.add_argument("--artifact", help="artifact directory (default: the built-in model)")
    p.add_argument("--task", help="GLUE task (default: the artifact's)")
    p.add_argument("--split", default="dev")
    p.add_argument("--limit", type=int, help="only the first N sentences of the split")
    p.add_argument("--engine", default="fast", help="GEMM engine: fast (exact float32 BLAS) or literal "
                                                     "(XNOR/AND-popcount on packed 64-bit words, as the PE array)")
    p.add_argument("--no-compare", action="store_true", help="skip the comparison with the PyTorch model")
    p.add_argument("--sentence", help="run one sentence: print each member's logits and the ensemble's answer")
    p.add_argument("--pair", help="with --sentence: the second sentence of a pair task")
    p.add_argument("--trace", help="with --sentence: write every intermediate integer tensor to this .npz file")
    p.add_argument("--backbone", help="tokenizer directory (default: the artifact recipe's backbone)")
    p.add_argument("--glue-dir", help="GLUE data folder (default: $BEBERT_GLUE_DIR, else shared/data/glue)")
    p.set_defaults(func=cmd_sim)
    p = sub.add_parser("counts", help="per-layer operation counts and stored size of an artifact (sim/counts.py)")
    p.add_argument("--artifact", help="artifact directory (default: the built-in model)")
    p.add_argument("--tokens", type=int, default=128, help="sentence length (default 128, the papers')")
    p.set_defaults(func=cmd_counts)
    p = sub.add_parser("gen", help="write the accelerator's Verilog, memory images and report (Amaranth)")
    p.add_argument("--artifact", help="artifact directory (default: the built-in model)")
    p.add_argument("--pe", type=int, default=64, help="output lanes of the PE array (default 64)")
    p.add_argument("--simd", type=int, default=64, help="input bits per lane per cycle (default 64)")
    p.add_argument("--members", type=int, help="members resident on chip (default: all of the ensemble; "
                                               "fewer stream their parameters in before they run)")
    p.add_argument("--act-bits", type=int, help="widest activation code of the PE array (default: the model's)")
    p.add_argument("--param-width", type=int, nargs="?", const=DEFAULT_PARAM_WIDTH, metavar="W", help=PARAM_WIDTH_HELP)
    p.add_argument("--tokens", type=int, default=32, help="sentence length of the report's cycle counts (default 32)")
    p.add_argument("--max-tokens", type=int, default=128, help="the longest sentence the build takes (default 128)")
    p.add_argument("--attention-lanes", type=int, default=4, help="keys a cycle in the attention units and softmax, "
                                                                  "a power of two (default 4)")
    p.add_argument("--hidden-lanes", type=int, default=8, help="hidden values a cycle in the residual stream and "
                                                               "LayerNorm (default 8)")
    p.add_argument("--products-only", action="store_true", help="the matrix-product accelerator alone: attention, "
                   "softmax, LayerNorms and residual adds left to the host (bebert.hw.host)")
    p.add_argument("--interface", default="native", help="native (the project's valid/ready ports and the trace "
                   "ports the co-simulation checks) or axi (AXI4-Lite registers, AXI4-Stream embedding rows and "
                   "results, an interrupt: a block for a Zynq or ECP5 system); default native")
    p.add_argument("--out", default="accelerator", help="output folder (default ./accelerator)")
    p.add_argument("--force", action="store_true", help="replace an output folder that holds other files")
    p.set_defaults(func=cmd_gen)
    p = sub.add_parser("cosim", help="run GLUE dev sentences through the accelerator in Verilator or Icarus "
                                     "(cocotb), checked against the simulator")
    p.add_argument("--artifact", help="artifact directory (default: the built-in model)")
    p.add_argument("--pe", type=int, default=64, help="output lanes of the PE array (default 64)")
    p.add_argument("--simd", type=int, default=64, help="input bits per lane per cycle (default 64)")
    p.add_argument("--members", type=int, help="members resident on chip (default: all)")
    p.add_argument("--act-bits", type=int, help="widest activation code of the PE array (default: the model's)")
    p.add_argument("--param-width", type=int, nargs="?", const=DEFAULT_PARAM_WIDTH, metavar="W", help=PARAM_WIDTH_HELP)
    p.add_argument("--beat-interval", type=int, default=1, help="with --param-width: the testbench's parameter "
                   "source offers a beat this many cycles after the one before (default 1, a beat a cycle)")
    p.add_argument("--sentences", type=int, default=4, help="first N dev sentences of the artifact's task (default 4)")
    p.add_argument("--gap", type=float, default=0.0, help="probability of a random stall on each stream side")
    p.add_argument("--waves", action="store_true", help="record VCD waveforms, dump.vcd (or set BEBERT_WAVES=1); "
                                                         "Verilator only")
    p.add_argument("--simulator", default="verilator", help="verilator (default) or icarus (four-state: any X or Z "
                                                            "read fails)")
    p.add_argument("--netlist", choices=["generic"], help="simulate Yosys' generic netlist of the design with its "
                                                          "images instead of the RTL (post-synthesis)")
    p.add_argument("--max-tokens", type=int, default=128, help="the build's longest sentence (default 128); longer "
                                                               "dev sentences are refused")
    p.add_argument("--attention-lanes", type=int, default=4, help="keys a cycle (default 4)")
    p.add_argument("--hidden-lanes", type=int, default=8, help="hidden values a cycle (default 8)")
    p.add_argument("--products-only", action="store_true", help="the matrix-product accelerator alone (as gen "
                   "--products-only), the host computing the rest of the encoder from its results")
    p.add_argument("--interface", default="native", help="native (the trace ports: every codes row, context row "
                   "and logits checked) or axi (the AXI shell of gen --interface axi, driven by cocotbext-axi: "
                   "classes and the cycle counter over AXI); default native")
    p.add_argument("--out", default="cosim", help="working folder (default ./cosim)")
    p.add_argument("--glue-dir", help="GLUE data folder (default: $BEBERT_GLUE_DIR, else shared/data/glue)")
    p.set_defaults(func=cmd_cosim)
    p = sub.add_parser("dse", help="sweep PE, SIMD, resident members, activation bits, member mapping and the "
                                   "encoder's lanes: whole inferences with the encoder on chip (cycle and resource "
                                   "models, real synthesis, cached), CSV and plots")
    p.add_argument("--spec", help="sweep file (YAML) with any of the keys models, pe, simd, resident, act_bits, "
                                  "mapping, tokens, clock_mhz, synth_max_mbit, encoder, max_tokens, attention_lanes, "
                                  "hidden_lanes, param_width; options below override it")
    p.add_argument("--models", help="comma-separated: builtin, or <minilm|bert-base|tiny>:<1-1-4|1-1-1>:<members> "
                                    "(default builtin,minilm:1-1-4:1,minilm:1-1-4:4,bert-base:1-1-4:2)")
    p.add_argument("--pe", help="comma-separated PE values (default 8,16,64)")
    p.add_argument("--simd", help="comma-separated SIMD values (default 32,64,128)")
    p.add_argument("--resident", help="comma-separated members resident on chip, products only (default 1,2,4; the "
                                      "encoder on chip holds every member)")
    p.add_argument("--act-bits", help="comma-separated activation widths (default: each model's own)")
    p.add_argument("--mapping", help="multiplexed, replicated or both, comma-separated (default both)")
    p.add_argument("--tokens", type=int, help="sentence length of the cycle figures (default 32)")
    p.add_argument("--clock-mhz", type=float, help="clock for throughput and latency (default: the measured fmax "
                                                    "of results/timing.yaml, else 100 MHz)")
    p.add_argument("--products-only", action="store_true", help="the matrix-product accelerator alone (the host runs "
                                                                 "attention and LayerNorms), as before the encoder "
                                                                 "on chip; default: whole inferences, encoder on chip")
    p.add_argument("--max-tokens", type=int, help="the encoder's longest sentence, which sizes its units (default 128)")
    p.add_argument("--attention-lanes", help="comma-separated keys a cycle of the attention units (default 4)")
    p.add_argument("--hidden-lanes", help="comma-separated hidden values a cycle of the residual stream and "
                                          "LayerNorm (default 8)")
    p.add_argument("--param-width", help="comma-separated parameter stream widths for the encoder's streamed "
                   "layers, 0 for every member resident (default 0; e.g. 0,512)")
    p.add_argument("--device", help="comma-separated target devices to judge every point on (default all: "
                                    "zu9eg, ecp5-85f): fits or not, what stops or bounds it, a Pareto plot each")
    p.add_argument("--no-synth", action="store_true", help="resource model only, no synthesis")
    p.add_argument("--synth-max-mbit", type=float, help="synthesize only designs with at most this much parameter "
                                                         "memory on chip (default 80; a BERT-base member has 118)")
    p.add_argument("--scheduler", help="Dask scheduler address (tcp://host:8786): run the jobs on that cluster")
    p.add_argument("--workers", type=int, help="local worker processes (default: all cores)")
    p.add_argument("--accuracy", default=ACCURACY_REPORT,
                   help=f"ensemble results with the SST-2 accuracies by member count (default {ACCURACY_REPORT}, "
                        "the first protocol's: results/bebert.md has no SST-2 run of the second yet; "
                        "'' to skip the accuracy plot)")
    p.add_argument("--out", default="dse", help="output folder (default ./dse)")
    p.set_defaults(func=cmd_dse)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_command("bebert-hw", args.func, args)


if __name__ == "__main__":
    sys.exit(main())
