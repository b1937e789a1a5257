"""Ternary weight splitting: the two binary halves add up to the ternary weight exactly, a split
model computes what the ternary model computes, exports bit-exactly, and a recipe with ternary
stages runs end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bebert.backbone import load_tokenizer
from bebert.errors import BebertError
from bebert.export import export_model, load_model
from bebert.model import BertDims, QuantBert, load_hf_weights
from bebert.pipeline import load_dev, load_model_checkpoint, run_recipe
from bebert.qconfig import QuantConfig, load_quant_config
from bebert.quantizers import binarize_weight, ternarize_weight
from bebert.recipe import Recipe, Stage
from bebert.train import predict_logits
from bebert.tws import split_ternary_model, split_ternary_weight


def weights():
    gen = torch.Generator().manual_seed(0)
    yield "normal", torch.randn(16, 40, generator=gen)
    yield "uniform", torch.rand(7, 33, generator=gen) * 2 - 1
    yield "scaled-rows", torch.randn(8, 24, generator=gen) * torch.logspace(-3, 1, 8)[:, None]
    w = torch.randn(6, 20, generator=gen)
    w[0] = 0.0  # an all-zero row
    w[1, ::3] = 0.0  # exact zeros (sign(0) = +1)
    w[2] = 0.5  # a constant row: every entry above the threshold
    yield "zeros-and-constants", w


@pytest.mark.parametrize("per_row", [False, True], ids=["per-matrix", "per-row"])
@pytest.mark.parametrize("name,w", list(weights()), ids=[n for n, _ in weights()])
def test_split_halves_add_up_to_the_ternary_weight(name, w, per_row):
    w1, w2 = split_ternary_weight(w, per_row)
    ternary = ternarize_weight(w, per_row)
    b1, b2 = binarize_weight(w1, per_row), binarize_weight(w2, per_row)
    assert torch.allclose(b1 + b2, ternary, atol=1e-6, rtol=0)

    zero = ternary == 0
    assert zero.any() and (~zero).any() or name == "zeros-and-constants"
    s1, s2 = torch.sign(b1), torch.sign(b2)
    nonzero_scale = (b1 != 0) & (b2 != 0)  # an all-zero row has scale 0 in both halves
    assert torch.equal(s1[zero & nonzero_scale], -s2[zero & nonzero_scale])  # they cancel
    assert torch.equal(s1[~zero], s2[~zero])  # they agree ...
    assert torch.equal(s1[~zero], torch.sign(ternary[~zero]))  # ... with the ternary sign


@pytest.fixture(scope="module")
def inputs(tiny_backbone):
    _, tokenizer = tiny_backbone
    enc = tokenizer(["the first sentence", "a second , longer sentence with more words in it ."],
                    padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]


def logits(model, inputs):
    with torch.no_grad():
        return model.eval()(*inputs).logits


@pytest.mark.parametrize("weight_scale", ["matrix", "row"])
def test_split_model_equals_ternary_model(tiny_backbone, inputs, tmp_path, weight_scale):
    hf, _ = tiny_backbone
    binary_qc = load_quant_config("w1e1a4").replace(weight_scale=weight_scale)
    torch.manual_seed(0)
    ternary = QuantBert(BertDims.from_hf_config(hf.config, 2), binary_qc.replace(weight_bits=2))
    load_hf_weights(ternary, hf.state_dict())
    with torch.no_grad():
        ternary.train()(*inputs)  # initialise the activation quantizers
    expected = logits(ternary, inputs)

    binary = split_ternary_model(ternary, binary_qc)
    assert binary.qc.weight_split is True and binary.qc.weight_bits == 1
    assert binary.qc == binary_qc.replace(weight_split=True)
    assert all(layer.weight_split is not None for layer in binary.quantized_linears().values())
    got = logits(binary, inputs)
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)

    loaded, manifest = load_model(export_model(binary, tmp_path / "artifact"))
    assert manifest["quant"]["weight_split"] is True
    assert torch.equal(logits(loaded, inputs), got)


def test_split_needs_a_ternary_model(tiny_backbone):
    hf, _ = tiny_backbone
    binary = QuantBert(BertDims.from_hf_config(hf.config, 2), load_quant_config("w1e1a4"))
    with pytest.raises(ValueError, match="ternary"):
        split_ternary_model(binary, load_quant_config("w1e1a4"))


@pytest.mark.parametrize("changes", [
    dict(weight_bits=1, weight_quantizer="bwn_centered"),
    dict(weight_bits=32),
    dict(weight_bits=2),
])
def test_weight_split_needs_binary_bwn_weights(changes):
    with pytest.raises(BebertError, match="weight_split"):
        QuantConfig(name="x", weight_split=True, **changes)
    with pytest.raises(BebertError, match="weight_split"):
        load_quant_config("w1e1a1").replace(weight_split=True)


def test_recipe_with_ternary_stages_runs_end_to_end(tiny_bert_dir, glue_dir, tmp_path):
    recipe = Recipe(task="sst2", backbone=str(tiny_bert_dir), max_length=32, batch_size=8, train_subset=32,
                    teacher=(Stage("task", 1, 1e-3),), ternary=(Stage("kd_hidden", 1, 1e-3),),
                    student=(Stage("kd_pred", 1, 1e-3),))
    out = tmp_path / "run"
    results = run_recipe(recipe, out, glue_dir=glue_dir, log=lambda *a: None)
    assert [s["objective"] for s in results["ternary"]["stages"]] == ["kd_hidden"]
    assert (out / "ternary" / "model.pt").is_file()
    assert results["bits"] == "1-1-4"

    model, manifest = load_model(out / "artifact")
    assert manifest["quant"]["weight_split"] is True
    assert manifest["recipe"]["ternary"] == [{"objective": "kd_hidden", "epochs": 1, "lr": 1e-3, "warmup": 0.1}]
    assert manifest["dev_metrics"] == results["student"]["dev"]
    trained = load_model_checkpoint(out / "student" / "model.pt")
    assert trained.qc.weight_split
    dev = load_dev(recipe, load_tokenizer(recipe.backbone), glue_dir)
    assert np.array_equal(predict_logits(model, dev), predict_logits(trained, dev))
