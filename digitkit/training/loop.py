"""Epochs over in-memory uint8 tensors: batching by index, batch-level augmentation, validation, early stopping.

Each epoch reseeds torch from (seed, epoch), so an epoch's shuffling, augmentation and dropout depend only on
its number: a run resumed from a checkpoint repeats exactly what the uninterrupted run would have done.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F

from digitkit.data.registry import Augment
from digitkit.data.transforms import augment as augment_batch
from digitkit.data.transforms import normalize
from digitkit.training.callbacks import EarlyStopping
from digitkit.training.config import TrainConfig


@dataclass
class Normalization:
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass
class LoopState:
    epoch: int = 0  # epochs completed
    history: list[dict[str, Any]] = field(default_factory=list)
    best_weights: dict[str, torch.Tensor] | None = None
    stop_reason: str = ""


def _to_input(x: torch.Tensor, norm: Normalization, device: torch.device, aug: Augment | None = None) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if aug is not None:
        x = augment_batch(x.float() / 255.0, aug)
    return normalize(x, norm.mean, norm.std).contiguous(memory_format=torch.channels_last)


@torch.inference_mode()
def logits_for(model: torch.nn.Module, x: torch.Tensor, norm: Normalization, device: torch.device, batch_size: int = 1000) -> torch.Tensor:
    """Logits for a whole uint8 tensor, in bounded batches, on the CPU."""
    model.eval()
    out = [model(_to_input(x[i : i + batch_size], norm, device)).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0)


def loss_and_accuracy(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    if len(y) == 0:
        return float("nan"), float("nan")
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = model.parameters()
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """plateau: cut the LR after `lr_patience` epochs without improvement, as Keras does (torch waits one epoch
    more); onecycle: warm up to `lr` and anneal to almost zero over all the run's batches."""
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.25, div_factor=10, final_div_factor=100
        )
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=cfg.lr_factor, patience=max(0, cfg.lr_patience - 1), min_lr=cfg.min_lr
    )


def train_one_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    norm: Normalization,
    aug: Augment | None,
    device: torch.device,
    on_batch: Callable[[int, float, float], None],
    per_batch_scheduler: Any = None,
) -> tuple[float, float]:
    model.train()
    order = torch.randperm(len(x))
    total_loss = torch.zeros((), device=device)
    total_correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for step, start in enumerate(range(0, len(x), cfg.batch_size)):
        idx = order[start : start + cfg.batch_size]
        xb, yb = _to_input(x[idx], norm, device, aug), y[idx].to(device, non_blocking=True)
        logits = model(xb)
        loss = F.cross_entropy(logits, yb, label_smoothing=cfg.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if per_batch_scheduler is not None:
            per_batch_scheduler.step()
        with torch.no_grad():
            total_loss += loss.detach() * len(idx)
            total_correct += (logits.argmax(1) == yb).sum()
        seen += len(idx)
        on_batch(step + 1, loss.item() if step % 20 == 0 else float("nan"), 0.0)
    return (total_loss / max(seen, 1)).item(), (total_correct.float() / max(seen, 1)).item()


def fit(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    early: EarlyStopping,
    data: dict[str, torch.Tensor],
    cfg: TrainConfig,
    norm: Normalization,
    aug: Augment | None,
    device: torch.device,
    state: LoopState,
    reporter: Any,
    on_epoch_end: Callable[[LoopState], None],
) -> LoopState:
    """Train until `cfg.epochs`, early stopping or the target accuracy; call `on_epoch_end` after each epoch."""
    train_x, train_y, val_x, val_y = data["train_x"], data["train_y"], data["val_x"], data["val_y"]
    has_val = len(val_y) > 0
    steps = (len(train_x) + cfg.batch_size - 1) // cfg.batch_size
    if state.best_weights is None:
        state.best_weights = copy.deepcopy(model.state_dict())
    while state.epoch < cfg.epochs:
        epoch = state.epoch + 1
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        lr = optimizer.param_groups[0]["lr"]
        t0 = time.perf_counter()
        reporter.epoch_started(epoch, cfg.epochs, steps)
        per_batch = scheduler if cfg.schedule == "onecycle" else None
        train_loss, train_acc = train_one_epoch(
            model, optimizer, train_x, train_y, cfg, norm, aug if cfg.augment else None, device, reporter.batch_done, per_batch
        )
        val_loss, val_acc = loss_and_accuracy(logits_for(model, val_x, norm, device), val_y) if has_val else (train_loss, train_acc)
        monitored = val_loss
        if per_batch is None:
            scheduler.step(monitored)
        if early.step(monitored, epoch) or cfg.patience == 0:
            state.best_weights = copy.deepcopy(model.state_dict())
        row = {
            "epoch": epoch,
            "train_accuracy": train_acc,
            "train_loss": train_loss,
            "val_accuracy": val_acc if has_val else None,
            "val_loss": val_loss if has_val else None,
            "lr": lr,
            "seconds": time.perf_counter() - t0,
        }
        state.history.append(row)
        state.epoch = epoch
        reporter.epoch_done(row)
        if cfg.target_accuracy is not None and val_acc >= cfg.target_accuracy:
            state.stop_reason = f"reached target accuracy {cfg.target_accuracy:.4f} at epoch {epoch}"
        elif early.should_stop:
            state.stop_reason = f"early stopping at epoch {epoch}: val loss did not improve for {cfg.patience} epochs (best epoch {early.best_epoch})"
        elif state.epoch >= cfg.epochs:
            state.stop_reason = f"finished {cfg.epochs} epochs"
        on_epoch_end(state)
        if state.stop_reason:
            break
    return state
