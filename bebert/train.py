"""The training loop of one stage: resumable, seeded, data-parallel under ``torchrun``.

Resumability: a checkpoint (model, optimizer, schedule, RNG, position in the epoch) is written
every ``checkpoint_every`` steps and at the end of every epoch; the order of an epoch is a pure
function of (seed, epoch), so a resumed run skips the batches already seen and continues with
the same data, the same dropout masks and the same learning rate as an uninterrupted one.

Checkpoint selection: given a selector (selection.py), a stage scores its model on held-out
training rows before its first update and every ``selector.every`` steps (its last step
included), keeps the best state, and ends on it. The scores and the best state travel in the
checkpoint, so a resumed stage chooses exactly as an uninterrupted one. Checkpoints hold only
tensors and plain types and load with ``torch.load(..., weights_only=True)``.

Data parallelism: under ``torchrun --nproc_per_node N`` every process takes every N-th row of
each global batch and DistributedDataParallel averages the gradients (gloo on CPU, NCCL on GPU).
Only rank 0 writes files and shows progress.
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from . import glue
from .data import EncodedSplit, collate, epoch_order, inference_batches
from .model import QuantBert
from .objectives import NEEDS_TEACHER, objective_loss
from .recipe import Stage

RECENT = 50  # steps over which the reported loss is averaged


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_world() -> World:
    """Join the process group when started by torchrun, else a world of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return World(dist.get_rank(), dist.get_world_size()) if size > 1 else World()


def device_for(world: World) -> torch.device:
    if torch.cuda.is_available():
        index = int(os.environ.get("LOCAL_RANK", world.rank)) % torch.cuda.device_count()
        return torch.device("cuda", index)
    return torch.device("cpu")


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()


def atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            # No weight decay on biases, LayerNorm, and quantizer steps/shifts (decay would shrink them).
            (no_decay if p.ndim <= 1 else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=lr)


def _linear_schedule(optimizer, total_steps: int, warmup: float):
    warm = max(1, int(total_steps * warmup))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warm if s < warm else max(0.0, (total_steps - s) / max(1, total_steps - warm)))


@torch.no_grad()
def calibrate(model: QuantBert, train: EncodedSplit, batch_size: int, seed: int) -> None:
    """Give every activation quantizer its data-driven initial step from one training batch."""
    was_training = model.training
    model.eval()
    idx = epoch_order(len(train), seed, 0)[:batch_size]
    batch = collate(train, idx)
    model(batch["input_ids"].to(_device_of(model)), batch["attention_mask"].to(_device_of(model)),
          batch["token_type_ids"].to(_device_of(model)))
    model.train(was_training)


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def predict_logits(model: QuantBert, split: EncodedSplit, batch_size: int = 64) -> np.ndarray:
    """Logits for every row of ``split``, in the split's order, from the model in eval mode."""
    was_training = model.training
    model.eval()
    device = _device_of(model)
    out = np.zeros((len(split), model.dims.num_labels), dtype=np.float32)
    for idx, batch in inference_batches(split, batch_size):
        logits = model(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                       batch["token_type_ids"].to(device)).logits
        out[idx] = logits.float().cpu().numpy()
    model.train(was_training)
    return out


def predictions_from_logits(logits: np.ndarray, regression: bool) -> np.ndarray:
    return logits[:, 0] if regression else logits.argmax(-1)


def predict(model: QuantBert, split: EncodedSplit, task: str) -> np.ndarray:
    """The model's answer for every row of ``split``: class indices, or STS-B scores."""
    return predictions_from_logits(predict_logits(model, split), glue.task_spec(task).is_regression)


def train_stage(model: QuantBert, stage: Stage, train: EncodedSplit, *, batch_size: int, seed: int,
                stage_dir: Path, world: World, teacher: QuantBert | None = None, regression: bool = False,
                checkpoint_every: int = 200, desc: str = "", selector=None) -> dict:
    """Run one stage to completion (or resume it from ``stage_dir/checkpoint.pt``); returns its stats.

    With a ``selector`` the model ends on the stage's best-scoring checkpoint, else on its last step."""
    if stage.objective in NEEDS_TEACHER and teacher is None:
        raise ValueError(f"objective {stage.objective} needs a teacher")
    device = _device_of(model)
    stage_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = stage_dir / "checkpoint.pt"
    local_batch = max(1, batch_size // world.size)

    calibrate(model, train, local_batch, seed)  # before DDP wraps it, which then broadcasts rank 0's steps
    # Stage 1 of distillation never reaches the pooler and classifier. They are frozen for the stage:
    # DDP would otherwise wait for their gradients (it sees the logits in the output) and hang.
    frozen = [p for p in (*model.pooler.parameters(), *model.classifier.parameters()) if p.requires_grad] \
        if stage.objective == "kd_hidden" else []
    for p in frozen:
        p.requires_grad_(False)
    try:
        return _run_stage(model, stage, train, batch_size=batch_size, seed=seed, checkpoint_path=checkpoint_path,
                          world=world, teacher=teacher, regression=regression, checkpoint_every=checkpoint_every,
                          desc=desc, device=device, selector=selector)
    finally:
        for p in frozen:
            p.requires_grad_(True)


class _Choice:
    """The selection so far within one stage: every (step, score), and the best state seen."""

    def __init__(self, selector, objective: str, teacher):
        self.selector, self.objective, self.teacher = selector, objective, teacher
        self.history: list[list] = []  # [step, score]
        self.best_step, self.best_score, self.best_state = None, -float("inf"), None

    def consider(self, model: QuantBert, step: int) -> None:
        if self.selector is None or (self.history and self.history[-1][0] == step):
            return
        score = self.selector.score(model, self.objective, self.teacher)
        self.history.append([step, score])
        if self.best_state is None or score > self.best_score:  # ties keep the earlier checkpoint
            self.best_step, self.best_score = step, score
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}

    def due(self, step: int, total_steps: int) -> bool:
        return self.selector is not None and (step % self.selector.every == 0 or step == total_steps)

    def state(self) -> dict | None:
        if self.selector is None:
            return None
        return {"history": self.history, "best_step": self.best_step, "best_score": self.best_score,
                "best_state": self.best_state}

    def restore(self, state: dict | None) -> None:
        if self.selector is not None and state is not None:
            self.history, self.best_step = state["history"], state["best_step"]
            self.best_score, self.best_state = state["best_score"], state["best_state"]

    def stats(self) -> dict:
        if self.selector is None:
            return {}
        return {"selected_step": self.best_step, "selection_score": self.best_score,
                "selection_history": self.history}


def _run_stage(model, stage, train, *, batch_size, seed, checkpoint_path, world, teacher, regression,
               checkpoint_every, desc, device, selector=None) -> dict:
    steps_per_epoch = len(train) // batch_size or 1
    total_steps = steps_per_epoch * stage.epochs
    optimizer = _optimizer(model, stage.lr)
    schedule = _linear_schedule(optimizer, total_steps, stage.warmup)
    epoch, step_in_epoch, elapsed, losses = 0, 0, 0.0, deque(maxlen=RECENT)
    choice = _Choice(selector, stage.objective, teacher)
    torch.manual_seed(seed)
    if checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        epoch, step_in_epoch, elapsed = state["epoch"], state["step_in_epoch"], state["elapsed"]
        losses.extend(state["recent_losses"])
        choice.restore(state.get("selection"))
        # RNG states must be CPU byte tensors; map_location moved them to the model's device with the rest.
        torch.set_rng_state(state["rng"].cpu())
        if torch.cuda.is_available() and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])  # dropout on the GPU draws from these

    wrapped = nn.parallel.DistributedDataParallel(model) if world.size > 1 else model
    if teacher is not None:
        teacher.eval()
    model.train()

    def save_checkpoint():
        if world.is_main:
            atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "schedule": schedule.state_dict(), "epoch": epoch, "step_in_epoch": step_in_epoch,
                         "elapsed": elapsed, "rng": torch.get_rng_state(), "recent_losses": list(losses),
                         "selection": choice.state(),
                         "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
                        checkpoint_path)

    progress = tqdm(total=total_steps, initial=epoch * steps_per_epoch + step_in_epoch, desc=desc,
                    disable=not world.is_main, dynamic_ncols=True, mininterval=2.0)
    if epoch == step_in_epoch == 0:
        choice.consider(model, 0)  # the model as the stage received it is a candidate too
    while epoch < stage.epochs:
        order = epoch_order(len(train), seed, epoch)
        started = time.perf_counter()
        while step_in_epoch < steps_per_epoch:
            rows = order[step_in_epoch * batch_size:(step_in_epoch + 1) * batch_size]
            rows = rows[world.rank::world.size] if world.size > 1 else rows
            batch = {k: v.to(device) for k, v in collate(train, rows).items()}
            inputs = (batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
            with torch.no_grad():
                teacher_out = teacher(*inputs) if teacher is not None else None
            loss = objective_loss(stage.objective, wrapped(*inputs), teacher_out, batch, regression)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            step_in_epoch += 1
            losses.append(loss.item())
            progress.update(1)
            progress.set_postfix(loss=f"{np.mean(losses):.4f}", refresh=False)
            step = epoch * steps_per_epoch + step_in_epoch
            if choice.due(step, total_steps):
                choice.consider(model, step)
            if step_in_epoch % checkpoint_every == 0 and step_in_epoch < steps_per_epoch:
                elapsed += time.perf_counter() - started
                started = time.perf_counter()
                save_checkpoint()
        elapsed += time.perf_counter() - started
        epoch, step_in_epoch = epoch + 1, 0
        save_checkpoint()
    progress.close()
    if choice.best_state is not None:
        model.load_state_dict(choice.best_state)
    barrier(world)
    return {"objective": stage.objective, "epochs": stage.epochs, "lr": stage.lr, "steps": total_steps,
            "final_loss": float(np.mean(losses)) if losses else None, "wall_s": round(elapsed, 1), **choice.stats()}
