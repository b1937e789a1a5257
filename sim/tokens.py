"""Token ids for the simulator without torch: the backbone's own tokenizer.json, read by `tokenizers`.

The Hugging Face fast tokenizer the PyTorch side uses is this same tokenizer.json; with padding off
and longest-first truncation to the recipe's max_length, the ids are identical (tested on GLUE dev).
"""

from __future__ import annotations

from pathlib import Path

from bebert.backbone import resolve_backbone
from bebert.errors import BebertError


class SentenceTokenizer:
    def __init__(self, backbone, max_length: int):
        from tokenizers import Tokenizer

        path = Path(resolve_backbone(backbone)) / "tokenizer.json"
        if not path.is_file():
            raise BebertError(f"The backbone {path.parent} has no tokenizer.json for the simulator.")
        self.tokenizer = Tokenizer.from_file(str(path))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)

    def encode(self, text_a: str, text_b: str | None = None) -> tuple[list[int], list[int]]:
        if not text_a.strip() or (text_b is not None and not text_b.strip()):
            raise BebertError("The sentence is empty; give the simulator some words.")
        encoding = self.tokenizer.encode(text_a, text_b) if text_b is not None else self.tokenizer.encode(text_a)
        return encoding.ids, encoding.type_ids

    def encode_examples(self, examples) -> tuple[list[list[int]], list[list[int]]]:
        pairs = [self.encode(e.text_a, e.text_b) for e in examples]
        return [p[0] for p in pairs], [p[1] for p in pairs]
