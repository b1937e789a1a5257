"""The integer datapath: fixed-point primitives, staircases, the code x code engines, the simulator
against the PyTorch integer mode (bit for bit, every intermediate tensor), engines against each
other on whole models, trace files, the tokenizer, the `bebert-hw sim` command and bad inputs."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from bebert.artifact import MANIFEST_FILE, RESERVED_KEYS, read_artifact, write_artifact
from bebert.backbone import load_tokenizer
from bebert.builtin import BUILTIN_DIR
from bebert.errors import BebertError
from bebert.export import export_ensemble
from bebert.glue import load_split
from bebert.integer import IntegerModel
from bebert.model import BertDims, QuantBert
from bebert.qconfig import load_quant_config
from bebert.sim.ensemble import join_members, load_simulation
from bebert.sim.fixed import bit_length, isqrt, multiplier, round_div, round_shift
from bebert.sim.gemm import codes_matmul
from bebert.sim.program import DatapathError, Quantizer, Codes, accumulator_staircase, staircase_from_table
from bebert.sim.tokens import SentenceTokenizer
from bebert.sim.trace import TraceError, read_trace, write_trace

from conftest import make_tiny_ensemble

ENV = dict(os.environ, OMP_NUM_THREADS="1")


# ------------------------------------------------------------------------------------------------
# primitives


def test_rounding_shifts_and_divisions_against_python_integers():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.integers(-2**40, 2**40, 2000), [-3, -2, -1, 0, 1, 2, 3, 5, -5]])
    for shift in (1, 3, 20):
        expected = [(int(v) + (1 << (shift - 1))) >> shift for v in values]  # half up
        assert round_shift(values, shift).tolist() == expected
    assert round_shift(np.array([5, -5, 6, -6]), 1).tolist() == [3, -2, 3, -3]  # 2.5 -> 3, -2.5 -> -2
    divisors = rng.integers(1, 1000, values.size)
    assert round_div(values, divisors).tolist() == [(2 * int(v) + int(d)) // (2 * int(d)) for v, d in zip(values, divisors)]


def test_isqrt_and_bit_length_are_exact():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.integers(0, 2**62, 3000), [0, 1, 2, 3, 4, 2**52 - 1, 2**52, 2**61, 2**62 - 1],
                             [(2**k) - 1 for k in range(1, 63)], [2**k for k in range(0, 62)]])
    import math

    assert isqrt(values).tolist() == [math.isqrt(int(v)) for v in values]
    assert bit_length(values).tolist() == [int(v).bit_length() for v in values]


def test_multiplier_keeps_thirty_bits():
    m = np.array([1e-3, 0.5, 3.0, 12345.678])
    big, shift = multiplier(m)
    assert big.max() < 2**30 and big.max() >= 2**29
    assert np.allclose(big / 2.0**shift, m, rtol=2e-9, atol=2.0**-shift)


# ------------------------------------------------------------------------------------------------
# staircases


def test_gelu_staircase_has_threshold_form_equal_to_its_table():
    rng = np.random.default_rng(2)
    quantizer = Quantizer(Codes(4, True), scale=0.05)  # fine steps: GELU's dip below zero shows
    stairs = accumulator_staircase(rng.uniform(0.001, 0.01, 16), rng.normal(0, 0.5, 16), "gelu", quantizer, 600, "t")
    x = rng.integers(-600, 601, size=(50, 16))
    via_table = stairs.apply(x)
    stairs.lut = None  # the same staircase by threshold compares only
    via_thresholds = stairs.apply(x)
    assert np.array_equal(via_table, via_thresholds)
    assert (stairs.down > np.iinfo(np.int64).min).any()  # the falling part needed "down" thresholds
    assert via_table.min() == -3  # GELU's minimum, -0.17, in steps of 0.05


def test_a_chain_that_rises_twice_has_no_threshold_form():
    table = np.array([[0, 1, 0, 1]])
    with pytest.raises(DatapathError, match="threshold form"):
        staircase_from_table(table, 0, 0, 1, "bumpy")


# ------------------------------------------------------------------------------------------------
# code x code products (attention)


@pytest.mark.parametrize("engine", ["literal", "fast"])
@pytest.mark.parametrize("a_bits,a_signed,b_bits,b_signed", [(4, True, 4, True), (4, False, 4, True), (1, False, 4, True),
                                                              (2, True, 3, False)])
@pytest.mark.parametrize("k", [1, 32, 63, 65, 130])
def test_codes_matmul_equals_integer_product(engine, a_bits, a_signed, b_bits, b_signed, k):
    rng = np.random.default_rng(k + a_bits)

    def codes(bits, signed, shape):
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        return rng.integers(lo, hi + 1, size=shape)

    a, b = codes(a_bits, a_signed, (5, k)), codes(b_bits, b_signed, (7, k))
    assert np.array_equal(codes_matmul(a, a_bits, a_signed, b, b_bits, b_signed, engine), a @ b.T)
    # worst case: every product at its largest magnitude
    a_max = np.full((1, k), -(2 ** (a_bits - 1)) if a_signed else 2**a_bits - 1)
    b_max = np.full((1, k), -(2 ** (b_bits - 1)) if b_signed else 2**b_bits - 1)
    assert codes_matmul(a_max, a_bits, a_signed, b_max, b_bits, b_signed, engine)[0, 0] == int((a_max * b_max).sum())


# ------------------------------------------------------------------------------------------------
# whole models: tiny ones of both settings, and the built-in model


@pytest.fixture(scope="module", params=["w1e1a4", "w1e1a1"])
def tiny_artifact(request, tiny_backbone, tmp_path_factory):
    """A 2-member ensemble of the tiny backbone whose quantizers saw real text (calibrated)."""
    return make_tiny_ensemble(tiny_backbone, request.param, 2, tmp_path_factory.mktemp(request.param) / "artifact")


SENTENCES = ["a gorgeous, witty, seductive movie.", "the plot is nothing but boilerplate clichés", "ok",
             "it 's a charming and often affecting journey ."]


def tokenized(tokenizer, sentences=SENTENCES):
    enc = [tokenizer(s) for s in sentences]
    return [e["input_ids"] for e in enc], [e["token_type_ids"] for e in enc]


def test_tiny_model_simulator_equals_pytorch_integer_mode(tiny_artifact, tiny_backbone):
    _, tokenizer = tiny_backbone
    simulation = load_simulation(tiny_artifact)
    integer = IntegerModel(simulation)
    ids, types = tokenized(tokenizer)
    for i in range(len(ids)):
        numpy_trace, torch_trace = {}, {}
        simulation.member_logits([ids[i]], [types[i]], trace=numpy_trace)
        integer.member_logits([ids[i]], [types[i]], trace=torch_trace)
        assert set(numpy_trace) == set(torch_trace)
        for name in numpy_trace:
            assert np.array_equal(numpy_trace[name], torch_trace[name]), name
    assert len(numpy_trace) == 2 * (3 + 2 * 22 + 5)  # every step of both members (2 layers) is traced
    batched = simulation.member_logits(ids, types)
    assert np.array_equal(batched, integer.member_logits(ids, types))


def test_tiny_model_engines_agree(tiny_artifact, tiny_backbone):
    _, tokenizer = tiny_backbone
    simulation = load_simulation(tiny_artifact)
    ids, types = tokenized(tokenizer)
    literal_trace, fast_trace = {}, {}
    simulation.member_logits(ids[:1], types[:1], engine="literal", trace=literal_trace)
    simulation.member_logits(ids[:1], types[:1], engine="fast", trace=fast_trace)
    for name in fast_trace:
        assert np.array_equal(literal_trace[name], fast_trace[name]), name
    assert np.array_equal(simulation.member_logits(ids, types, engine="literal"),
                          simulation.member_logits(ids, types, engine="fast"))


def test_batched_run_equals_one_sentence_at_a_time(tiny_artifact, tiny_backbone):
    _, tokenizer = tiny_backbone
    simulation = load_simulation(tiny_artifact)
    ids, types = tokenized(tokenizer)
    together = simulation.member_logits(ids, types)  # padded batches, masked keys
    alone = np.concatenate([simulation.member_logits([i], [t]) for i, t in zip(ids, types)], axis=1)
    assert np.array_equal(together, alone)


def test_builtin_model_integer_mode_equals_simulator_on_dev_sentences(glue_dir):
    simulation = load_simulation(BUILTIN_DIR)
    integer = IntegerModel(simulation)
    tokenizer = SentenceTokenizer("minilm", simulation.manifest["recipe"]["max_length"])
    ids, types = tokenizer.encode_examples(load_split("sst2", "dev", glue_dir)[:8])
    for i in range(len(ids)):
        a, b = {}, {}
        simulation.member_logits([ids[i]], [types[i]], trace=a)
        integer.member_logits([ids[i]], [types[i]], trace=b)
        assert all(np.array_equal(a[n], b[n]) for n in a) and set(a) == set(b)


def test_ensemble_join_in_fixed_point():
    logits = np.array([[[10, -10], [-5, 5]], [[-30, 30], [1, -1]]])  # (members, sentences, labels)
    assert join_members(logits, np.array([1, 1]), "logits", False).tolist() == [1, 1]
    assert join_members(logits, np.array([3, 1]), "vote", False).tolist() == [0, 1]
    assert join_members(logits, np.array([1, 3]), "vote", False).tolist() == [1, 0]
    scores = np.array([[[4], [0]], [[8], [6]], [[1], [2]]])
    assert join_members(scores, np.array([1, 1, 1]), "vote", True).tolist() == [4, 2]  # median
    assert join_members(scores, np.array([1, 2, 1]), "logits", True).tolist() == [5, 4]  # (4+16+1)/4 = 5.25


def test_simulator_tokenizer_matches_the_pytorch_sides(glue_dir):
    hf = load_tokenizer("minilm")
    for task, length in (("sst2", 64), ("mrpc", 128)):
        examples = load_split(task, "dev", glue_dir)[:200]
        ids, types = SentenceTokenizer("minilm", length).encode_examples(examples)
        enc = hf([e.text_a for e in examples], [e.text_b for e in examples] if examples[0].text_b else None,
                 truncation=True, max_length=length)
        assert ids == enc["input_ids"] and types == enc["token_type_ids"]


def test_simulator_and_cli_never_import_torch():
    code = ("import sys, bebert.sim.ensemble, bebert.sim.execute, bebert.sim.tokens, bebert.sim.trace, "
            "bebert.hw.cli; assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, env=ENV)


# ------------------------------------------------------------------------------------------------
# trace files


def test_trace_round_trip(tmp_path):
    tensors = {"m0.layer0.query.acc": np.arange(12).reshape(3, 4) - 6, "ensemble.scores": np.array([5, -2**40])}
    path = write_trace(tmp_path / "t.npz", tensors, {"sentence": "hi", "frac": 24})
    back, meta = read_trace(path)
    assert set(back) == set(tensors) and all(np.array_equal(back[k], tensors[k]) for k in tensors)
    assert meta["sentence"] == "hi" and meta["frac"] == 24 and meta["format"] == "bebert-trace/1"
    assert not list(tmp_path.glob("*.tmp*"))


def test_bad_trace_files(tmp_path):
    with pytest.raises(TraceError, match="does not exist"):
        read_trace(tmp_path / "none.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(TraceError, match="not a readable"):
        read_trace(tmp_path / "junk.npz")
    np.savez(tmp_path / "plain.npz", a=np.zeros(2))
    with pytest.raises(TraceError, match="not a bebert trace"):
        read_trace(tmp_path / "plain.npz")
    with pytest.raises(TraceError, match="must end in .npz"):
        write_trace(tmp_path / "t.txt", {}, {})


# ------------------------------------------------------------------------------------------------
# the command and its bad inputs


def hw(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "bebert.hw.cli", *map(str, args)], env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def one_error(proc, *fragments):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bebert-hw: error: ") and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_sim_sentence_writes_a_trace(tmp_path):
    proc = hw("sim", "--sentence", "a gorgeous, witty, seductive movie.", "--trace", tmp_path / "t.npz")
    assert proc.returncode == 0, proc.stderr
    assert "member 1 (alpha" in proc.stdout and "member 2 (alpha" in proc.stdout and "ensemble answer: 1" in proc.stdout
    trace, meta = read_trace(tmp_path / "t.npz")
    assert meta["answer"] == 1 and trace["ensemble.answer"].tolist() == [1]
    assert trace["m0.logits"].shape == (2,) and "m1.layer5.ffn_norm" in trace


def test_sim_on_dev_sentences_compares_with_pytorch(glue_dir):
    proc = hw("sim", "--limit", "24", "--glue-dir", glue_dir)
    assert proc.returncode == 0, proc.stderr
    assert "sst2 dev: 24 sentences" in proc.stdout and "integer datapath (this simulator): accuracy" in proc.stdout
    assert "prediction agreement" in proc.stdout


@pytest.mark.parametrize("args,fragment", [
    (["--sentence", "   "], "sentence is empty"),
    (["--trace", "x.npz"], "give it with --sentence"),
    (["--engine", "gpu"], "--engine must be"),
    (["--limit", "0"], "--limit must be"),
])
def test_sim_bad_arguments(args, fragment, glue_dir):
    one_error(hw("sim", *args, "--glue-dir", glue_dir), fragment)


@pytest.fixture
def builtin_copy(tmp_path):
    import shutil

    return shutil.copytree(BUILTIN_DIR, tmp_path / "artifact")


def test_sim_refuses_another_format_version(builtin_copy):
    manifest = yaml.safe_load((builtin_copy / MANIFEST_FILE).read_text())
    manifest["format_version"] = 99
    (builtin_copy / MANIFEST_FILE).write_text(yaml.safe_dump(manifest, sort_keys=False))
    one_error(hw("sim", "--artifact", builtin_copy, "--sentence", "fine"), str(builtin_copy), "version")


def test_sim_refuses_a_shape_mismatch(tmp_path):
    source = read_artifact(BUILTIN_DIR)
    tensors = {name: source.tensor(name) for name in source.names()}
    binary = {n for n, e in source.manifest["tensors"].items() if e["kind"] == "binary"}
    tensors["m1.layers.2.ffn_in.bias"] = np.zeros(100, np.float32)
    manifest = {k: v for k, v in source.manifest.items() if k not in RESERVED_KEYS}
    bad = write_artifact(tmp_path / "bad", manifest, tensors, binary=binary)
    with pytest.raises(BebertError, match=r"m1.layers.2.ffn_in.bias has shape \(100,\).*\(1536,\)"):
        load_simulation(bad)


def test_sim_refuses_a_float_model(tiny_backbone, tmp_path):
    hf, _ = tiny_backbone
    model = QuantBert(BertDims.from_hf_config(hf.config, 2), load_quant_config("fp32"))
    path = export_ensemble([(model.eval(), 1.0)], tmp_path / "fp32")
    with pytest.raises(DatapathError, match="binary models"):
        load_simulation(path)


def test_counts_command():
    proc = hw("counts", "--tokens", "64")
    assert proc.returncode == 0, proc.stderr
    assert "layer5" in proc.stdout and "per member: 698,499,840 MACs" in proc.stdout  # 6 x 116,391,936 + head
    one_error(hw("counts", "--tokens", "0"), "--tokens must be")
