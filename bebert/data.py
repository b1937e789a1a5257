"""GLUE examples -> token ids -> padded batches (dynamic padding: each batch as long as its longest row)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .glue import GlueExample


@dataclass
class EncodedSplit:
    """One tokenized split: ragged token ids kept unpadded until a batch is formed."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    labels: np.ndarray  # int64 class indices, or float32 scores for regression
    pad_id: int

    def __len__(self) -> int:
        return len(self.input_ids)

    def take(self, rows) -> "EncodedSplit":
        """The split made of ``rows`` (indices, repeats allowed: a resampled training set)."""
        rows = np.asarray(rows, dtype=np.int64)
        return EncodedSplit([self.input_ids[i] for i in rows], [self.token_type_ids[i] for i in rows],
                            self.labels[rows], self.pad_id)


def encode(examples: list[GlueExample], tokenizer, max_length: int, regression: bool = False) -> EncodedSplit:
    """Tokenize single sentences or pairs with the checkpoint's own tokenizer, truncated to max_length."""
    first = [e.text_a for e in examples]
    second = [e.text_b for e in examples] if examples and examples[0].text_b is not None else None
    enc = tokenizer(first, second, truncation=True, max_length=max_length)
    dtype = np.float32 if regression else np.int64
    labels = np.asarray([e.label for e in examples], dtype=dtype)
    return EncodedSplit(enc["input_ids"], enc["token_type_ids"], labels, tokenizer.pad_token_id or 0)


def collate(split: EncodedSplit, indices) -> dict[str, torch.Tensor]:
    """Pad the chosen rows to the longest among them; attention_mask marks the real tokens."""
    rows = [split.input_ids[i] for i in indices]
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), split.pad_id, dtype=np.int64)
    types = np.zeros_like(ids)
    mask = np.zeros_like(ids)
    for j, i in enumerate(indices):
        n = len(split.input_ids[i])
        ids[j, :n] = split.input_ids[i]
        types[j, :n] = split.token_type_ids[i]
        mask[j, :n] = 1
    return {
        "input_ids": torch.from_numpy(ids),
        "token_type_ids": torch.from_numpy(types),
        "attention_mask": torch.from_numpy(mask),
        "labels": torch.from_numpy(split.labels[np.asarray(indices, dtype=np.int64)]),
    }


def drop_tokens(split: EncodedSplit, rate: float, seed: int, keep_ids) -> EncodedSplit:
    """A perturbed copy of ``split``: each token not in ``keep_ids`` (the special tokens) is dropped with
    probability ``rate``, by a seeded draw per row, so the same perturbation can be replayed."""
    keep_ids = set(keep_ids)
    ids, types = [], []
    for row, (row_ids, row_types) in enumerate(zip(split.input_ids, split.token_type_ids)):
        drop = np.random.default_rng([seed, row]).random(len(row_ids)) < rate
        kept = [j for j, token in enumerate(row_ids) if token in keep_ids or not drop[j]]
        ids.append([row_ids[j] for j in kept])
        types.append([row_types[j] for j in kept])
    return EncodedSplit(ids, types, split.labels.copy(), split.pad_id)


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled order of one epoch: a pure function of (seed, epoch), so a resumed run replays it."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def inference_batches(split: EncodedSplit, batch_size: int):
    """Batches sorted by length (little padding); yields (original indices, batch)."""
    order = np.argsort([len(r) for r in split.input_ids], kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        yield idx, collate(split, idx)
