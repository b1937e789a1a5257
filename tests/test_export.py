"""export_model / export_ensemble -> load_model / load_ensemble: bit-exact round trips on the tiny
backbone, binary tensors really stored as bits, ensembles, and every damaged or inconsistent
artifact refused with an ArtifactError naming the file."""

from __future__ import annotations

import shutil

import pytest
import torch
import yaml

from bebert.artifact import MANIFEST_FILE, TENSOR_FILE, ArtifactError, read_artifact
from bebert.errors import BebertError
from bebert.export import ARTIFACT_KIND, export_ensemble, export_model, load_ensemble, load_model, model_tensors
from bebert.model import BertDims, QuantBert, load_hf_weights
from bebert.qconfig import load_quant_config

NUM_LABELS = 2


@pytest.fixture(scope="module")
def inputs(tiny_backbone):
    _, tokenizer = tiny_backbone
    enc = tokenizer(["a tiny test sentence .", "another , somewhat longer one , with padding after it !",
                     "short"], ["second half", "of a pair", "here"], padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]


def build(tiny_backbone, inputs, config: str, seed: int = 0, num_labels: int = NUM_LABELS) -> QuantBert:
    """A QuantBert from the tiny backbone, with one training-mode forward so its quantizers initialise."""
    hf, _ = tiny_backbone
    torch.manual_seed(seed)
    model = QuantBert(BertDims.from_hf_config(hf.config, num_labels), load_quant_config(config))
    load_hf_weights(model, hf.state_dict())
    if seed:  # a different member: move every weight a little
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01 * torch.randn_like(p))
    model.train()
    with torch.no_grad():
        model(*inputs)
    return model.eval()


def logits(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(*inputs).logits


@pytest.fixture(scope="module")
def exported(tiny_backbone, inputs, tmp_path_factory):
    """config -> (model, artifact dir) for the three settings, exported once per module."""
    out = {}
    for config in ("fp32", "w1e1a4", "w1e1a1"):
        model = build(tiny_backbone, inputs, config)
        out[config] = model, export_model(model, tmp_path_factory.mktemp(config) / "artifact", {"note": config})
    return out


@pytest.mark.parametrize("config", ["fp32", "w1e1a4", "w1e1a1"])
def test_round_trip_is_bit_exact(exported, inputs, config):
    model, path = exported[config]
    loaded, manifest = load_model(path)
    assert not loaded.training
    assert loaded.dims == model.dims and loaded.qc == model.qc
    assert torch.equal(logits(loaded, inputs), logits(model, inputs))
    assert manifest["kind"] == ARTIFACT_KIND and manifest["note"] == config
    assert manifest["bits"]["label"] == model.qc.bits_label
    assert manifest["members"] == [{"prefix": "m0.", "weight": 1.0}]


@pytest.mark.parametrize("config", ["w1e1a4", "w1e1a1"])
def test_binary_tensors_are_stored_as_bits(exported, config):
    model, path = exported[config]
    entries = read_artifact(path).entries
    signs = [name for name in entries if name.endswith("_signs")]
    # every quantized linear (Q, K, V, attention output, FFN in and out per layer, pooler,
    # classifier) and the word embeddings
    assert len(signs) == 6 * model.dims.num_layers + 2 + 1
    assert all(entries[name].kind == "binary" and entries[name].dtype == "uint64" for name in signs)
    assert entries["m0.embeddings.word_embeddings.weight_signs"].shape == (model.dims.vocab_size,
                                                                           model.dims.hidden_size)
    binary = {name for name, entry in entries.items() if entry.kind == "binary"}
    assert binary == set(signs)
    # the latent float weights of binary layers are not stored
    assert "m0.layers.0.ffn_in.weight" not in entries and "m0.embeddings.word_embeddings.weight" not in entries


def test_fp32_artifact_has_no_binary_tensors(exported):
    _, path = exported["fp32"]
    assert all(entry.kind == "float" for entry in read_artifact(path).entries.values())


def artifact_bytes(path) -> int:
    return sum(f.stat().st_size for f in path.iterdir())


def test_binary_artifact_is_far_smaller_than_fp32(exported):
    fp32, w1e1a4 = artifact_bytes(exported["fp32"][1]), artifact_bytes(exported["w1e1a4"][1])
    assert fp32 / w1e1a4 > 4, (fp32, w1e1a4)


def test_ternary_model_is_not_exportable(tiny_backbone, inputs):
    hf, _ = tiny_backbone
    ternary = QuantBert(BertDims.from_hf_config(hf.config, NUM_LABELS),
                        load_quant_config("w1e1a4").replace(weight_bits=2))
    with pytest.raises(ValueError, match="split it"):
        model_tensors(ternary)


def test_ensemble_round_trip(tiny_backbone, inputs, tmp_path):
    first, second = build(tiny_backbone, inputs, "w1e1a4", seed=0), build(tiny_backbone, inputs, "w1e1a4", seed=1)
    assert not torch.equal(logits(first, inputs), logits(second, inputs))
    path = export_ensemble([(first, 0.7), (second, 0.3)], tmp_path / "ensemble", {"note": "two"})
    members, manifest = load_ensemble(path)
    assert [w for _, w in members] == [0.7, 0.3]
    assert manifest["members"] == [{"prefix": "m0.", "weight": 0.7}, {"prefix": "m1.", "weight": 0.3}]
    for (loaded, _), source in zip(members, (first, second)):
        assert torch.equal(logits(loaded, inputs), logits(source, inputs))

    with pytest.raises(ArtifactError, match="load_ensemble") as info:
        load_model(path)
    assert str(path) in str(info.value)


def test_ensemble_members_must_match(tiny_backbone, inputs, tmp_path):
    a4, a1 = build(tiny_backbone, inputs, "w1e1a4"), build(tiny_backbone, inputs, "w1e1a1")
    with pytest.raises(ValueError, match="same dimensions and quantization"):
        export_ensemble([(a4, 0.5), (a1, 0.5)], tmp_path / "mixed")
    three_labels = build(tiny_backbone, inputs, "w1e1a4", num_labels=3)
    with pytest.raises(ValueError, match="same dimensions and quantization"):
        export_ensemble([(a4, 0.5), (three_labels, 0.5)], tmp_path / "mixed")
    with pytest.raises(ValueError):
        export_ensemble([], tmp_path / "empty")
    assert not (tmp_path / "mixed").exists() and not (tmp_path / "empty").exists()


# ------------------------------------------------------------------------------------------------
# damaged or inconsistent artifacts


@pytest.fixture
def copy(exported, tmp_path):
    """A private copy of the w1e1a4 artifact, free to damage."""
    return shutil.copytree(exported["w1e1a4"][1], tmp_path / "artifact")


def edit_manifest(path, change):
    manifest = yaml.safe_load((path / MANIFEST_FILE).read_text())
    change(manifest)
    (path / MANIFEST_FILE).write_text(yaml.safe_dump(manifest, sort_keys=False))


def refused(path, fragment: str = "") -> str:
    with pytest.raises(ArtifactError) as info:
        load_model(path)
    message = str(info.value)
    assert isinstance(info.value, BebertError)
    assert str(path) in message, message
    assert fragment in message, message
    return message


def test_truncated_tensor_file(copy):
    blob = (copy / TENSOR_FILE).read_bytes()
    (copy / TENSOR_FILE).write_bytes(blob[: len(blob) // 2])
    assert str(copy / TENSOR_FILE) in refused(copy, "truncated")


def test_flipped_byte(copy):
    blob = bytearray((copy / TENSOR_FILE).read_bytes())
    blob[len(blob) // 2] ^= 0x01
    (copy / TENSOR_FILE).write_bytes(bytes(blob))
    assert str(copy / TENSOR_FILE) in refused(copy, "corrupted")


def test_future_format_version(copy):
    edit_manifest(copy, lambda m: m.update(format_version=2))
    refused(copy, "format_version 2")


def test_manifest_layer_count_disagrees_with_tensors(copy):
    edit_manifest(copy, lambda m: m["model"].update(num_layers=3))
    refused(copy, "does not match its model description")


def test_manifest_hidden_size_disagrees_with_tensors(copy):
    edit_manifest(copy, lambda m: m["model"].update(vocab_size=m["model"]["vocab_size"] - 1))
    refused(copy, "shape")


def test_manifest_of_another_kind(copy):
    edit_manifest(copy, lambda m: m.update(kind="something-else"))
    refused(copy, "'something-else'")


def test_manifest_without_model_description(copy):
    edit_manifest(copy, lambda m: m.pop("model"))
    refused(copy, "valid model description")


def test_member_without_tensors(copy):
    edit_manifest(copy, lambda m: m["members"].append({"prefix": "m1.", "weight": 1.0}))
    with pytest.raises(ArtifactError) as info:
        load_ensemble(copy)
    assert str(copy) in str(info.value) and "member m1" in str(info.value)


def test_no_members(copy):
    edit_manifest(copy, lambda m: m.update(members=[]))
    refused(copy, "no ensemble members")


def test_missing_directory(tmp_path):
    refused(tmp_path / "nothing-here", "does not exist")


@pytest.mark.parametrize("change", [
    pytest.param(lambda m: m.update(model=[1, 2]), id="model-not-a-mapping"),
    pytest.param(lambda m: m.update(members=5), id="members-not-a-list"),
    pytest.param(lambda m: m["quant"].update(weight_bits=3), id="weight-bits-3"),
    pytest.param(lambda m: m["model"].update(num_heads=5), id="heads-not-dividing-hidden"),
    pytest.param(lambda m: m["members"][0].update(weight="abc"), id="weight-not-a-number"),
    pytest.param(lambda m: m["model"].update(num_layers="x"), id="layers-not-a-number"),
])
def test_invalid_model_description_is_an_artifact_error(copy, change):
    edit_manifest(copy, change)
    refused(copy)
