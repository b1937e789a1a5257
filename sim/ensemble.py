"""The whole ensemble on the integer datapath: members one after another, then the fixed-point join.

As the accelerator does it, every member runs over the sentence in turn (their programs are
compiled once), and the ensemble unit joins their fixed-point outputs with the members' weights
as integers A_m = round(alpha_m * 2^ALPHA_FRAC):

  * ``logits``: score_c = sum_m A_m * logit_{m,c}; the answer is the first c with the largest score;
  * ``vote``: each member adds A_m to the bin of its own argmax class; the first largest bin wins;
  * regression: ``vote`` is the A-weighted median of the members' scores, ``logits`` their
    A-weighted mean, round_div(sum_m A_m y_m, sum_m A_m).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bebert.artifact import read_artifact

from .execute import run_member
from .fixed import ALPHA_FRAC, round_div, to_fixed
from .program import DatapathError, Member, compile_ensemble


@dataclass
class Simulation:
    """A compiled artifact, ready to run sentences."""

    path: Path
    manifest: dict
    members: list[Member]

    @property
    def combine(self) -> str:
        return self.manifest.get("ensemble", {}).get("combine", "vote")

    @property
    def regression(self) -> bool:
        return self.manifest["model"]["num_labels"] == 1

    @property
    def alphas(self) -> np.ndarray:
        return to_fixed([m.weight for m in self.members], ALPHA_FRAC)

    def member_logits(self, input_ids, token_type_ids=None, engine: str = "fast", trace: dict | None = None,
                      progress: bool = False) -> np.ndarray:
        """(members, sentences, labels) fixed-point outputs, member after member (a progress bar
        over members and sentences with ``progress``)."""
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(self.members) * len(input_ids), desc="simulating", unit="sentence",
                       dynamic_ncols=True, mininterval=1.0)
        outputs = []
        for member in self.members:
            outputs.append(run_member(member, input_ids, token_type_ids, engine=engine, trace=trace,
                                      on_batch=bar.update if bar is not None else None))
        if bar is not None:
            bar.close()
        return np.stack(outputs)

    def join(self, member_logits: np.ndarray, trace: dict | None = None) -> np.ndarray:
        return join_members(member_logits, self.alphas, self.combine, self.regression, trace)


def join_members(member_logits: np.ndarray, alphas: np.ndarray, combine: str, regression: bool,
                 trace: dict | None = None) -> np.ndarray:
    """The ensemble's answer per sentence from fixed-point member outputs (members, sentences, labels)."""
    alphas = np.asarray(alphas, dtype=np.int64)
    if regression:
        scores = member_logits[..., 0]
        if combine == "logits":
            return round_div((alphas[:, None] * scores).sum(axis=0), alphas.sum())
        order = np.argsort(scores, axis=0, kind="stable")
        cumulative = np.cumsum(alphas[order], axis=0)
        first = (2 * cumulative >= cumulative[-1]).argmax(axis=0)
        return scores[order[first, np.arange(scores.shape[1])], np.arange(scores.shape[1])]
    if combine == "logits":
        scores = np.tensordot(alphas, member_logits, axes=1)  # (sentences, labels)
    elif combine == "vote":
        scores = np.zeros(member_logits.shape[1:], dtype=np.int64)
        for alpha, logits in zip(alphas, member_logits):
            scores[np.arange(logits.shape[0]), logits.argmax(axis=-1)] += alpha
    else:
        raise DatapathError(f"members are joined by 'vote' or 'logits', not {combine!r}")
    if trace is not None:
        trace["ensemble.scores"] = np.array(scores[0], dtype=np.int64)
    return scores.argmax(axis=-1)


def load_simulation(directory) -> Simulation:
    """Read and compile an artifact (every member) for the integer datapath."""
    artifact = read_artifact(directory)
    return Simulation(artifact.path, artifact.manifest, compile_ensemble(artifact))
