"""The one training loop, for images and speech: epochs of batches from a task's `TrainingData`, validation, LR
schedule, early stopping, and a list of callbacks (the reporter, the checkpoint writer, a user's hook).

Each epoch reseeds torch from (seed, epoch), so an epoch's shuffling, augmentation and dropout depend only on
its number: a run resumed from a checkpoint repeats exactly what the uninterrupted run would have done.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

import torch

from digitkit.config import TrainConfig
from digitkit.errors import DigitkitError
from digitkit.training.callbacks import Callback, EarlyStopping
from digitkit.training.distributed import World


class TrainingData(Protocol):
    """What the loop needs from a task's data: batches, a loss, and a validation pass."""

    def steps_per_epoch(self, batch_size: int) -> int: ...

    def set_epoch(self, epoch: int, epochs: int) -> None:
        """Told before each epoch, for tasks whose objective changes over the run."""
        ...

    def train_batches(self, batch_size: int, order: torch.Generator | None = None, world: World = World()) -> Iterator[tuple[Any, Any, int]]:
        """(inputs, targets, n) per batch of `batch_size` in all, this rank's slice of it. The epoch's order comes
        from `order` when given (the same on every rank), else from torch's global RNG (reseeded every epoch)."""
        ...

    def loss(self, model: torch.nn.Module, inputs: Any, targets: Any, label_smoothing: float) -> tuple[torch.Tensor, Any]:
        """(mean loss, number of correct samples) for one training batch."""
        ...

    def validate(self, model: torch.nn.Module) -> tuple[float, float] | None:
        """(loss, accuracy) on the validation split, or None without one."""
        ...


class Diverged(DigitkitError):
    """The training loss became NaN or infinite: the run cannot recover, and its weights are garbage."""

    def __init__(self, epoch: int, loss: float):
        self.epoch = epoch
        super().__init__(f"training diverged in epoch {epoch} (the loss became {loss}): lower --lr, or set --grad-clip")


@dataclass
class LoopState:
    epoch: int = 0  # epochs completed
    history: list[dict[str, Any]] = field(default_factory=list)
    best_weights: dict[str, torch.Tensor] | None = None
    stop_reason: str = ""


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """On CUDA the fused kernels update every parameter in one or two launches instead of several per tensor: a
    small net's step is otherwise dominated by launch overhead."""
    params = list(model.parameters())
    fused = {"fused": True} if params and params[0].is_cuda else {}
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay, **fused)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """plateau: cut the LR after `lr_patience` epochs without improvement, as Keras does (torch waits one epoch
    more); onecycle: warm up to `lr` and anneal to almost zero over all the run's batches."""
    if cfg.schedule == "onecycle":
        # each phase needs a step or more: very short runs (a tiny --limit, one epoch) stretch the warm-up
        total = max(cfg.epochs * steps_per_epoch, 4)
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.lr, total_steps=total, pct_start=max(0.25, 2 / total), div_factor=10, final_div_factor=100
        )
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=cfg.lr_factor, patience=max(0, cfg.lr_patience - 1), min_lr=cfg.min_lr
    )


@dataclass(frozen=True)
class Precision:
    """Mixed precision for a run: autocast's device type and dtype (None: plain fp32), and whether the loss needs
    scaling (fp16 only)."""

    device_type: str = "cpu"
    dtype: torch.dtype | None = None

    @property
    def scaled(self) -> bool:
        return self.dtype == torch.float16

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None)


def cpu_bf16_instructions() -> dict[str, bool]:
    """Which bf16 matrix instructions this CPU has, by torch's own probes; a probe that is missing from this torch
    or fails counts as absent."""
    found = {}
    for name, probe_name in (("amx_tile", "_is_amx_tile_supported"), ("avx512_bf16", "_is_avx512_bf16_supported")):
        probe = getattr(torch.cpu, probe_name, None)
        try:
            found[name] = bool(probe is not None and probe())
        except RuntimeError:
            found[name] = False
    return found


def cpu_has_fast_bf16() -> bool:
    """CPUs with bf16 matrix instructions (Intel AMX tiles, or AVX512-BF16 as on AMD Zen 4) run bf16 convolutions
    2-3x faster than fp32 on 2 cores (measured with bench/precision.py: a CIFAR ResNet step 2.3x on a Zen 4 EPYC,
    about 3x on AMX Xeons). Without them bf16 has to be converted in software, so auto keeps fp32 there."""
    return any(cpu_bf16_instructions().values())


def pick_precision(name: str, device: torch.device, convolutional: bool = False) -> Precision:
    """auto: bf16 on a CUDA GPU that has it, else fp16 on CUDA; bf16 for conv nets on a CPU with bf16 matrix
    instructions (AMX or AVX512-BF16); else fp32 (MPS, other CPUs, recurrent models on
    CPU, where autocast rarely pays)."""
    from digitkit.errors import DigitkitError

    if name == "auto":
        if device.type == "cpu" and convolutional and cpu_has_fast_bf16():
            return Precision("cpu", torch.bfloat16)
        if device.type != "cuda":
            return Precision(device.type)
        return Precision("cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    if name == "fp32":
        return Precision(device.type)
    if name == "bf16":
        if device.type not in ("cpu", "cuda"):
            raise DigitkitError(f"--precision bf16 needs a CPU or CUDA device, not {device.type}")
        return Precision(device.type, torch.bfloat16)
    if name == "fp16":
        if device.type != "cuda":
            raise DigitkitError("--precision fp16 needs a CUDA GPU; on a CPU use bf16 or fp32")
        return Precision("cuda", torch.float16)
    raise DigitkitError(f"--precision must be auto, fp32, bf16 or fp16, not {name!r}")


def train_one_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    data: TrainingData,
    cfg: TrainConfig,
    on_batch: Callable[[int, float], None],
    per_batch_scheduler: Any = None,
    order: torch.Generator | None = None,
    world: World = World(),
    precision: Precision = Precision(),
    scaler: Any = None,
) -> tuple[float, float]:
    model.train()
    total_loss, total_correct, seen = 0.0, 0.0, 0
    for step, (inputs, targets, n) in enumerate(data.train_batches(cfg.batch_size, order, world)):
        with precision.autocast():
            loss, correct = data.loss(model, inputs, targets, cfg.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:  # fp16: scale the loss so small gradients survive, unscale before clipping
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        if per_batch_scheduler is not None:
            per_batch_scheduler.step()
        total_loss += loss.detach() * n
        total_correct += correct
        seen += n
        on_batch(step + 1, loss.item() if step % 20 == 0 else float("nan"))
    total_loss, total_correct, seen = world.sum(float(total_loss), float(total_correct), seen)
    return total_loss / max(seen, 1), total_correct / max(seen, 1)


def fit(
    model: torch.nn.Module,
    raw_model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    early: EarlyStopping,
    data: TrainingData,
    cfg: TrainConfig,
    state: LoopState,
    callbacks: list[Callback],
    world: World = World(),
    precision: Precision = Precision(),
) -> LoopState:
    """Train until `cfg.epochs`, early stopping or the target accuracy. `model` is what trains (it may be wrapped by
    DistributedDataParallel or torch.compile); `raw_model` is the bare module inside it, whose weights are kept and
    which validates. Every callback hears of every epoch and batch."""
    scaler = torch.amp.GradScaler(precision.device_type) if precision.scaled else None
    steps = data.steps_per_epoch(cfg.batch_size)
    per_batch = scheduler if cfg.schedule == "onecycle" else None
    if state.best_weights is None:
        state.best_weights = copy.deepcopy(raw_model.state_dict())

    def on_batch_end(step: int, loss: float) -> None:
        for callback in callbacks:
            callback.on_batch_end(step, loss)

    while state.epoch < cfg.epochs:
        epoch = state.epoch + 1
        epoch_seed = cfg.seed * 100_003 + epoch
        torch.manual_seed(epoch_seed + 7919 * world.rank)  # augmentation and dropout differ per rank...
        order = torch.Generator().manual_seed(epoch_seed) if world.distributed else None  # ...the data order not
        lr = optimizer.param_groups[0]["lr"]
        t0 = time.perf_counter()
        data.set_epoch(epoch, cfg.epochs)
        for callback in callbacks:
            callback.on_epoch_begin(epoch, cfg.epochs, steps)
        train_loss, train_acc = train_one_epoch(model, optimizer, data, cfg, on_batch_end, per_batch, order, world,
                                                precision, scaler)
        if not math.isfinite(train_loss):  # the weights are NaN now: nothing of this epoch is worth keeping
            raise Diverged(epoch, train_loss)
        # validation runs in fp32, as `evaluate` does: the history's val numbers are what the deployed weights score
        validation = world.share(data.validate(raw_model) if world.is_main else None)
        val_loss, val_acc = validation if validation is not None else (train_loss, train_acc)
        if per_batch is None:
            scheduler.step(val_loss)
        if early.step(val_loss, epoch) or cfg.patience == 0:
            state.best_weights = copy.deepcopy(raw_model.state_dict())
        row = {"epoch": epoch, "train_accuracy": train_acc, "train_loss": train_loss,
               "val_accuracy": val_acc if validation is not None else None,
               "val_loss": val_loss if validation is not None else None, "lr": lr, "seconds": time.perf_counter() - t0}
        state.history.append(row)
        state.epoch = epoch
        state.stop_reason = _stop_reason(cfg, early, epoch, val_acc)
        for callback in callbacks:
            callback.on_epoch_end(row, state)
        if state.stop_reason:
            break
    return state


def _stop_reason(cfg: TrainConfig, early: EarlyStopping, epoch: int, val_acc: float) -> str:
    if cfg.target_accuracy is not None and val_acc >= cfg.target_accuracy:
        return f"reached target accuracy {cfg.target_accuracy:.4f} at epoch {epoch}"
    if early.should_stop:
        return f"early stopping at epoch {epoch}: val loss did not improve for {cfg.patience} epochs (best epoch {early.best_epoch})"
    if epoch >= cfg.epochs:
        return f"finished {cfg.epochs} epochs"
    return ""
