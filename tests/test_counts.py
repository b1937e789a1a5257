"""sim/counts.py: the operation and size counts, checked by hand and against a real exported artifact."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bebert.artifact import read_artifact
from bebert.export import export_model
from bebert.model import BertDims, QuantBert, load_hf_weights
from bebert.qconfig import load_quant_config
from bebert.sim.counts import FP32, Bits, MatMul, inference_counts, stored_bytes, total, weight_bits

BERT_BASE = dict(vocab_size=30522, hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072,
                 max_position=512, type_vocab_size=2, num_labels=2)


def test_bert_base_fp32_is_the_papers_22_gflops():
    counts = total(inference_counts(BERT_BASE, 128, FP32))
    # per token and layer 4*768^2 + 2*768*3072 weight MACs, plus 2 * 128 * 768 attention MACs
    per_layer = 128 * (4 * 768 * 768 + 2 * 768 * 3072) + 2 * 128 * 128 * 768
    assert counts["macs"] == 12 * per_layer + 768 * 768 + 2 * 768
    assert counts["matmul_flops"] == 2 * counts["macs"]
    assert 22.3e9 < counts["flops"] < 22.6e9  # BinaryBERT and BiBERT quote 22.5 G
    assert counts["bops"] == 0


def test_quantized_macs_cost_bit_products_over_64():
    one_four = MatMul("x", 1000, 1, 4)
    assert one_four.bops == 4000 and one_four.flops == pytest.approx(2 * 4000 / 64)
    assert MatMul("fp", 1000, 32, 32).flops == 2000 and MatMul("fp", 1000, 32, 32).bops == 0
    counts = total(inference_counts(BERT_BASE, 128, Bits()))
    fp32 = total(inference_counts(BERT_BASE, 128, FP32))
    assert counts["macs"] == fp32["macs"]
    assert counts["bops"] == 4 * counts["macs"] + 12 * 2 * 128 * 128 * 768 * (16 - 4)  # 4x4-bit attention
    assert 1.4e9 < counts["flops"] < 1.7e9  # BinaryBERT quotes 1.5 G for 1-1-4


def test_layers_are_listed_in_order():
    layers = inference_counts(BERT_BASE, 16, Bits())
    assert [l.name for l in layers] == ["embeddings"] + [f"layer{i}" for i in range(12)] + ["head"]
    assert [m.name for m in layers[1].matmuls] == ["query", "key", "value", "attention_output", "ffn_in", "ffn_out",
                                                   "scores", "context"]


def test_fp32_size_is_four_bytes_per_parameter(tiny_backbone):
    hf, _ = tiny_backbone
    model = QuantBert(BertDims.from_hf_config(hf.config, 2), load_quant_config("fp32"))
    params = sum(p.numel() for p in model.parameters())
    assert stored_bytes(BertDims.from_hf_config(hf.config, 2).to_dict(), FP32) == 4 * params


@pytest.mark.parametrize("config", ["w1e1a4", "w1e1a1"])
def test_binary_bits_match_the_exported_artifact(tiny_backbone, tmp_path, config):
    hf, tokenizer = tiny_backbone
    dims = BertDims.from_hf_config(hf.config, 2)
    model = QuantBert(dims, load_quant_config(config))
    load_hf_weights(model, hf.state_dict())
    with torch.no_grad():
        model(tokenizer(["count me"], return_tensors="pt")["input_ids"])
    artifact = read_artifact(export_model(model.eval(), tmp_path / "a"))
    entries = artifact.manifest["tensors"]
    binary_elements = sum(int(np.prod(e["shape"])) for e in entries.values() if e["kind"] == "binary")
    float_elements = {name: int(np.prod(e["shape"])) for name, e in entries.items() if e["kind"] != "binary"}
    quantizer_elements = sum(n for name, n in float_elements.items() if name.endswith((".step", ".shift")))

    bits = Bits.from_manifest(artifact.manifest)
    counted = weight_bits(dims.to_dict(), bits)
    binary_counted = (dims.vocab_size * dims.hidden_size
                      + dims.num_layers * (4 * dims.hidden_size ** 2 + 2 * dims.hidden_size * dims.intermediate_size)
                      + dims.hidden_size ** 2 + 2 * dims.hidden_size)
    assert binary_elements == binary_counted
    # everything else the artifact stores is 32-bit; the counts leave out only the quantizer steps/shifts
    stored_bits = binary_elements + 32 * (sum(float_elements.values()) - quantizer_elements)
    assert sum(counted.values()) == stored_bits
