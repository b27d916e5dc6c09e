"""What the training loop tells the world (one list of `Callback`s, as in Keras), and early stopping, whose state
goes into the checkpoint so `--resume` is exact."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


class Callback:
    """Hooks into `training.loop.fit`, each a no-op here; the console reporter, the checkpoint writer and a user's
    `epoch_callback` are all callbacks. An exception raised in a hook stops training (tuning's pruning does so)."""

    def on_epoch_begin(self, epoch: int, epochs: int, steps: int) -> None: ...

    def on_batch_end(self, step: int, loss: float) -> None:
        """`loss` is NaN except every few steps: reading it waits for the device."""

    def on_epoch_end(self, row: dict[str, Any], state: Any) -> None:
        """`row` is the epoch's history row; `state` the loop's (`training.loop.LoopState`)."""

    def close(self) -> None:
        """The run is over (finished, interrupted or failed): release files."""


class EachEpoch(Callback):
    """A plain function of the epoch's history row, as `api.train(epoch_callback=...)` takes one."""

    def __init__(self, fn: Any):
        self.fn = fn

    def on_epoch_end(self, row: dict[str, Any], state: Any) -> None:
        self.fn(row)


class TensorBoard(Callback):
    """Each epoch's history row (losses, accuracies, learning rate, seconds) by epoch, and the training loss by
    batch, as TensorBoard scalars in `folder` (`tensorboard --logdir folder`); a resumed run continues its curves."""

    def __init__(self, folder: Any):
        from digitkit.errors import DigitkitError

        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise DigitkitError('--tensorboard needs the tensorboard extra: pip install "digitkit[tensorboard]"') from None
        from digitkit.atomic import folder_problem

        problem = folder_problem(Path(folder))
        if problem:
            raise DigitkitError(f"--tensorboard {folder}: {problem}")
        self.writer = SummaryWriter(str(folder))
        self.first_step = 0

    def on_epoch_begin(self, epoch: int, epochs: int, steps: int) -> None:
        self.first_step = (epoch - 1) * steps

    def on_batch_end(self, step: int, loss: float) -> None:
        if math.isfinite(loss):
            self.writer.add_scalar("batch/train_loss", loss, self.first_step + step + 1)

    def on_epoch_end(self, row: dict[str, Any], state: Any) -> None:
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(f"epoch/{key}", value, row["epoch"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class EarlyStopping:
    """Stop when the monitored loss has not improved for `patience` epochs (0 = never stop)."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best = math.inf
        self.best_epoch = 0
        self.bad_epochs = 0

    def step(self, value: float, epoch: int) -> bool:
        """Record one epoch's loss; True when it is the best so far."""
        if value < self.best:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best if math.isfinite(self.best) else None, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = math.inf if state.get("best") is None else float(state["best"])
        self.best_epoch = int(state.get("best_epoch", 0))
        self.bad_epochs = int(state.get("bad_epochs", 0))
