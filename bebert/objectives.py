"""Training objectives: the task loss and the two knowledge-distillation stages of BinaryBERT/TinyBERT.

  * ``task``     cross entropy on the labels (MSE for regression): the full-precision teacher;
  * ``kd_hidden`` stage 1: MSE between student and teacher hidden states (embeddings and every
                  layer) plus MSE between their pre-softmax attention scores, over real tokens only;
  * ``kd_pred``   stage 2: soft cross entropy against the teacher's class distribution (MSE on the
                  teacher's score for regression);
  * ``kd_joint``  BiT's single stage: the hidden-state MSE (no attention-score term, which BiT turns
                  off for binary activations) plus the prediction loss of ``kd_pred``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .model import BertOutput

OBJECTIVES = ("task", "kd_hidden", "kd_pred", "kd_joint")
NEEDS_TEACHER = {"kd_hidden", "kd_pred", "kd_joint"}


def task_loss(logits: torch.Tensor, labels: torch.Tensor, regression: bool) -> torch.Tensor:
    if regression:
        return F.mse_loss(logits.squeeze(-1), labels.float())
    return F.cross_entropy(logits, labels)


def hidden_kd_loss(student: BertOutput, teacher: BertOutput, attention_mask: torch.Tensor,
                   attention: bool = True) -> torch.Tensor:
    tokens = attention_mask.bool()  # (b, t)
    pairs = (tokens[:, None, :, None] & tokens[:, None, None, :])  # (b, 1, t, t): real query x real key
    loss = torch.zeros((), device=attention_mask.device)
    for s, t in zip(student.hidden_states, teacher.hidden_states):
        loss = loss + F.mse_loss(s[tokens], t[tokens])
    for s, t in zip(student.attention_scores if attention else (), teacher.attention_scores):
        mask = pairs.expand_as(s)
        loss = loss + F.mse_loss(s[mask], t[mask])
    return loss


def prediction_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, regression: bool) -> torch.Tensor:
    if regression:
        return F.mse_loss(student_logits, teacher_logits)
    return -(teacher_logits.softmax(-1) * student_logits.log_softmax(-1)).sum(-1).mean()


def objective_loss(objective: str, student: BertOutput, teacher: BertOutput | None, batch: dict,
                   regression: bool) -> torch.Tensor:
    if objective == "task":
        return task_loss(student.logits, batch["labels"], regression)
    if objective == "kd_hidden":
        return hidden_kd_loss(student, teacher, batch["attention_mask"])
    if objective == "kd_pred":
        return prediction_kd_loss(student.logits, teacher.logits, regression)
    if objective == "kd_joint":
        return (hidden_kd_loss(student, teacher, batch["attention_mask"], attention=False)
                + prediction_kd_loss(student.logits, teacher.logits, regression))
    raise ValueError(f"unknown objective {objective!r}")
