"""Shared fixtures of the test suite: a tiny real Hugging Face BERT on disk, and the GLUE folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

# Tiny backbone shape, importable by tests that need to know it (e.g. to size expectations).
TINY_HIDDEN = 32
TINY_LAYERS = 2
TINY_HEADS = 4
TINY_INTERMEDIATE = 64
TINY_MAX_POSITION = 64


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A tiny but real Hugging Face BERT directory, loadable with ``bebert.backbone.load_backbone(dir)``.

    ``transformers.BertModel`` (with pooler) built from ``BertConfig(vocab_size=30522 (MiniLM's
    tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    max_position_embeddings=64, hidden_act="gelu")``, randomly initialised under
    ``torch.manual_seed(0)`` and written with ``save_pretrained`` (config.json + model.safetensors),
    plus the all-MiniLM-L6-v2 tokenizer (vocab.txt, tokenizer.json, ...) saved into the same folder.
    Built once per session, offline; treat it as read-only (copy it before changing anything).
    """
    from transformers import AutoTokenizer, BertConfig, BertModel

    from bebert.backbone import default_backbone_dir

    tokenizer = AutoTokenizer.from_pretrained(default_backbone_dir())
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=TINY_HIDDEN,
        num_hidden_layers=TINY_LAYERS,
        num_attention_heads=TINY_HEADS,
        intermediate_size=TINY_INTERMEDIATE,
        max_position_embeddings=TINY_MAX_POSITION,
        hidden_act="gelu",
    )
    torch.manual_seed(0)
    model = BertModel(config)
    path = tmp_path_factory.mktemp("tiny_bert")
    model.save_pretrained(path)  # transformers 5 always writes model.safetensors
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    """The shared GLUE folder (holding SST-2/, MRPC/, ...), found by ``bebert.glue.resolve_glue_dir()``."""
    from bebert.glue import resolve_glue_dir

    return resolve_glue_dir()


@pytest.fixture(scope="session")
def tiny_backbone(tiny_bert_dir):
    """(transformers BertModel, tokenizer) of the tiny BERT, loaded through bebert.backbone."""
    from bebert.backbone import load_backbone

    return load_backbone(tiny_bert_dir)


@pytest.fixture
def kill_after_checkpoint(monkeypatch):
    """kill(run, stage_dir, after): call ``run()`` and stop it, as a kill would, right after the
    ``after``-th checkpoint of ``stage_dir`` reaches the disk; returns that checkpoint, loaded."""
    import bebert.train

    def kill(run, stage_dir: Path, after: int) -> dict:
        real_save, saved = bebert.train.atomic_save, []

        def save_then_die(obj, path):
            real_save(obj, path)
            if Path(path).name == "checkpoint.pt" and Path(path).parent == stage_dir:
                saved.append(path)
                if len(saved) == after:
                    raise KeyboardInterrupt

        monkeypatch.setattr(bebert.train, "atomic_save", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            run()
        monkeypatch.setattr(bebert.train, "atomic_save", real_save)
        return torch.load(stage_dir / "checkpoint.pt", weights_only=True)

    return kill


def make_tiny_ensemble(tiny_backbone, quant: str, members: int, path: Path, combine: str = "logits") -> Path:
    """Export an ensemble of ``members`` tiny-backbone models in setting ``quant`` (w1e1a4, w1e1a1),
    each perturbed by its own seed and calibrated on two real sentences, with alphas 1, 2, ...;
    returns the artifact folder."""
    from bebert.export import export_ensemble
    from bebert.model import BertDims, QuantBert, load_hf_weights
    from bebert.qconfig import load_quant_config

    hf, tokenizer = tiny_backbone
    models = []
    for seed in range(members):
        torch.manual_seed(seed)
        model = QuantBert(BertDims.from_hf_config(hf.config, 2), load_quant_config(quant))
        load_hf_weights(model, hf.state_dict())
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.02 * torch.randn_like(p))  # members differ
            batch = tokenizer(["a fine, warm film", "dull and far too long"], padding=True, return_tensors="pt")
            model(batch["input_ids"], batch["attention_mask"])
        models.append((model.eval(), 1.0 + seed))
    info = {"task": {"name": "sst2", "num_labels": 2, "metric": "accuracy"},
            "ensemble": {"method": "adaboost", "mode": "none", "combine": combine, "members": members},
            "recipe": {"backbone": str(tokenizer.name_or_path), "max_length": 32}}
    return export_ensemble(models, path, info)


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tiny models run fastest on one thread, and CI's two cores may be shared with another job."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh synthesis cache (hw/flows/synth.py), so a test runs Yosys itself."""
    monkeypatch.setenv("BEBERT_HW_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def assert_block_resources(cases, tolerance: float = 0.15) -> None:
    """Synthesize each (Amaranth unit, its resource model's Resources) with Yosys synth_xilinx
    (hw/flows/synth.py) and check the model: LUTs and FFs within ``tolerance``; DSPs, distributed RAM and
    block RAM exact."""
    from amaranth.back import verilog

    from bebert.hw.flows.synth import design_jobs, synthesize

    designs = [design_jobs(verilog.convert(unit, name="block", emit_src=False), "block") for unit, _ in cases]
    for (unit, model), result in zip(cases, synthesize(designs, workers=2)):
        found = result.total
        exact = ("dsp", "lutram", "bram36", "bram18")
        assert [getattr(found, f) for f in exact] == [getattr(model, f) for f in exact], (unit.shape, found, model)
        for field in ("lut", "ff"):
            assert abs(getattr(model, field) - getattr(found, field)) <= tolerance * getattr(found, field), \
                (unit.shape, field, getattr(model, field), getattr(found, field))
