"""Memory images: every member's parameters laid out as the accelerator's memories hold them.

Three memories per resident member, one word per output fold (thresholds, affine) or per
(output fold, input fold) pair (weights), jobs one after another in schedule order (plan.py):

* **weights**, PE x SIMD bits: lane p's SIMD bits at [p*SIMD, (p+1)*SIMD), bit s = weight
  (o*PE + p, i*SIMD + s), 1 for +1; rows and columns past the matrix are 0.
* **thresholds**, a word of PE x levels x 2 x T bits a fold: lane p, level l at ((p*levels + l)*2)*T:
  the rising threshold ``up`` then the falling one ``down`` (docs/datapath.md, "Staircases"), two's
  complement, clamped to one past the accumulator's range where a level is never reached; held as
  ``threshold_fold`` memory words of ``threshold_word_width`` bits, the word's bits in order (part p
  its bits from p x the part's width), zero past its end.
* **affine**, SHIFT_BITS + PE x (MULT_BITS + B) bits: the shift S, then per lane the multiplier
  M_c (unsigned) and the bias B_c (two's complement): y = round_shift(acc * M_c, S) + B_c.

Images are written as $readmemh files, one per block-RAM tile of the memory (param_memory.py;
one word per line, most significant digit first), and also given as Python integers for the
parameter load stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bebert import bitpack
from bebert.sim.fixed import MULT_BITS

from ..blocks.param_memory import tile_images
from ..design.plan import MEMORIES, SHIFT_BITS, AcceleratorPlan, MatrixJob



def twos_complement_bits(values: np.ndarray, width: int) -> np.ndarray:
    """(..., width) bits, least significant first, of int64 values in two's complement."""
    values = np.asarray(values, dtype=np.int64)
    return ((values[..., None] >> np.arange(width)) & 1).astype(np.uint8)


def _weight_words(plan: AcceleratorPlan, member: int, job: MatrixJob) -> np.ndarray:
    pe, simd = plan.config.pe, plan.config.simd
    lin = plan.linear(member, job)
    bits = (bitpack.unpack_signs(lin.weights, lin.k) > 0).astype(np.uint8)  # (M, K)
    out_folds, in_folds = plan.out_folds(job), plan.in_folds(job)
    padded = np.zeros((out_folds * pe, in_folds * simd), dtype=np.uint8)
    padded[:job.rows, :job.k] = bits
    words = padded.reshape(out_folds, pe, in_folds, simd).transpose(0, 2, 1, 3)
    return words.reshape(out_folds * in_folds, pe * simd)


def _threshold_words(plan: AcceleratorPlan, member: int, job: MatrixJob) -> np.ndarray:
    pe, levels, width = plan.config.pe, plan.levels, plan.threshold_bits
    stairs = plan.linear(member, job).staircase
    bound = job.accumulator_bound
    used = 1 if job.output_codes.bits == 1 else stairs.up.shape[1]  # bipolar: both levels share one threshold
    up = np.full((plan.out_folds(job) * pe, levels), bound + 1, dtype=np.int64)
    down = np.full_like(up, -bound - 1)
    up[:job.rows, :used] = np.minimum(np.broadcast_to(stairs.up[:, :used], (job.rows, used)), bound + 1)
    down[:job.rows, :used] = np.maximum(np.broadcast_to(stairs.down[:, :used], (job.rows, used)), -bound - 1)
    pairs = np.stack([up, down], axis=-1)  # (lanes, levels, 2)
    bits = twos_complement_bits(pairs, width).reshape(plan.out_folds(job), plan.threshold_width)
    fold, part = plan.threshold_fold, plan.threshold_word_width
    parts = np.zeros((plan.out_folds(job), fold * part), dtype=np.uint8)
    parts[:, :plan.threshold_width] = bits
    return parts.reshape(plan.out_folds(job) * fold, part)


def _affine_words(plan: AcceleratorPlan, member: int, job: MatrixJob) -> np.ndarray:
    pe = plan.config.pe
    lin = plan.linear(member, job)
    lanes = plan.out_folds(job) * pe
    mult = np.zeros(lanes, dtype=np.int64)
    bias = np.zeros(lanes, dtype=np.int64)
    mult[:job.rows], bias[:job.rows] = lin.mult, lin.bias
    lane_bits = np.concatenate([twos_complement_bits(mult, MULT_BITS), twos_complement_bits(bias, plan.bias_bits)],
                               axis=-1).reshape(plan.out_folds(job), pe * plan.affine_lane_bits)
    shift = np.broadcast_to(twos_complement_bits(np.array(lin.shift), SHIFT_BITS), (plan.out_folds(job), SHIFT_BITS))
    return np.concatenate([shift, lane_bits], axis=1)


@dataclass
class MemoryImages:
    """One member's three memory images as bit matrices (depth, width), least significant bit first."""

    weights: np.ndarray
    thresholds: np.ndarray
    affine: np.ndarray

    def words(self, memory: str) -> list[int]:
        """The image's words as Python integers."""
        return image_words(getattr(self, memory))

    def load_beats(self) -> list[int]:
        """The load stream's beats for this member: weights, then thresholds, then affine words."""
        return [word for memory in MEMORIES for word in self.words(memory)]

    def write_tiles(self, memory: str, folder: Path) -> list[Path]:
        """One image's $readmemh files, one per tile, into ``folder`` (created; callers write into a
        staging folder that they rename when done, so no file here is ever seen half written)."""
        return write_tile_images(getattr(self, memory), folder)


def image_words(bits: np.ndarray) -> list[int]:
    """An image's words, (words, width) bits, as Python integers."""
    packed = np.packbits(bits, axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def write_tile_images(bits: np.ndarray, folder: Path) -> list[Path]:
    """A memory's image, (words, width) bits, as one $readmemh file per tile in ``folder`` (created)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, tile in tile_images(bits):
        (folder / name).write_text(hex_lines(tile))
        paths.append(folder / name)
    return paths


def hex_bits(text: str, width: int) -> np.ndarray:
    """$readmemh text (one word per line) as (words, width) bits, least significant first: the inverse
    of ``hex_lines``."""
    words = [int(line, 16) for line in text.split()]
    return ((np.array(words, dtype=object)[:, None] >> np.arange(width)) & 1).astype(np.uint8)


def hex_lines(bits: np.ndarray) -> str:
    """(words, width) bits, least significant first, as $readmemh text: one word per line."""
    digits = max(1, (bits.shape[1] + 3) // 4)
    packed = np.packbits(bits, axis=1, bitorder="little")
    return "".join(row.tobytes()[::-1].hex()[-digits:].rjust(digits, "0") + "\n" for row in packed)


def member_images(plan: AcceleratorPlan, member: int) -> MemoryImages:
    """A resident member's images: every job's words."""
    return job_images(plan, member, plan.jobs)


def job_images(plan: AcceleratorPlan, member: int, jobs) -> MemoryImages:
    """The words of ``jobs`` (in order) of one member, as the memories hold them from a unit's start."""
    def stack(rows: list[np.ndarray], width: int) -> np.ndarray:
        return np.concatenate(rows) if rows else np.zeros((0, width), dtype=np.uint8)

    return MemoryImages(
        weights=stack([_weight_words(plan, member, j) for j in jobs], plan.weight_width),
        thresholds=stack([_threshold_words(plan, member, j) for j in jobs if not j.affine], plan.threshold_word_width),
        affine=stack([_affine_words(plan, member, j) for j in jobs if j.affine], plan.affine_width),
    )
