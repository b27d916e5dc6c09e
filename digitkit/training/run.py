"""One training run from a resolved config to a finished checkpoint: build (data, model, optimizer, schedule, and
a resumed run's state), wrap (DistributedDataParallel, torch.compile), fit (the one loop, writing the checkpoint
after every epoch), test (the best weights on the test set, written as the final checkpoint)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import torch

from digitkit import checkpoint as ckpt_io
from digitkit import tasks
from digitkit.atomic import atomic_path, exclusive, folder_problem
from digitkit.config import TrainConfig
from digitkit.errors import CheckpointError, DigitkitError, TrainingInterrupted
from digitkit.training.callbacks import Callback, EarlyStopping
from digitkit.training.distributed import World
from digitkit.training.loop import Diverged, LoopState, fit, make_optimizer, make_scheduler, pick_precision


class _WriteCheckpoint(Callback):
    """After every epoch rank 0 rewrites the checkpoint (atomically), so Ctrl-C or a crash loses one epoch at most."""

    def __init__(self, run: "TrainingRun"):
        self.run = run

    def on_epoch_end(self, row: dict[str, Any], state: LoopState) -> None:
        if self.run.world.is_main:
            ckpt_io.save(self.run.out, self.run.snapshot("running", {"best_val_loss": self.run.early.state_dict()["best"]}))


def log_path(checkpoint: Path) -> Path:
    """The per-epoch CSV beside a checkpoint: runs/mnist-cnn.safetensors -> runs/mnist-cnn.csv (never the
    checkpoint's own name)."""
    return checkpoint.with_suffix(".csv") if checkpoint.suffix.lower() != ".csv" else checkpoint.with_name(checkpoint.name + ".log.csv")


class _WriteLog(Callback):
    """After every epoch rank 0 rewrites the run's whole history as CSV beside the checkpoint (one row per epoch,
    as Keras' CSVLogger writes), atomically; a resumed run's file keeps the epochs before the resume."""

    def __init__(self, run: "TrainingRun"):
        self.run = run

    def on_epoch_end(self, row: dict[str, Any], state: LoopState) -> None:
        import csv

        if not self.run.world.is_main:
            return
        columns = list(dict.fromkeys(k for r in state.history for k in r))
        try:
            with atomic_path(log_path(self.run.out)) as tmp, open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, columns, restval="")
                writer.writeheader()
                writer.writerows(state.history)
        except OSError as exc:  # the log is a convenience: a full disk must not stop the run its checkpoint saves
            self.run.reporter.warn(f"could not write {log_path(self.run.out)}: {exc.strerror or exc}")


class TrainingRun:
    def __init__(self, cfg: TrainConfig, out: Path, device: torch.device, world: World, reporter: Any):
        self.cfg, self.out, self.device, self.world, self.reporter = cfg, out, device, world, reporter
        self.task, _ = tasks.for_dataset(cfg.dataset)
        self.state = LoopState()
        self.setup_seconds = 0.0

    def build(self, folder: Path, allow_download: bool, previous: ckpt_io.Checkpoint | None = None,
              resume: Any = None) -> None:
        """The data on the device, a fresh model and its optimizer, schedule and early stopping; with `previous`,
        the state of the run it continues."""
        started = time.perf_counter()
        cfg = self.cfg
        # cuDNN's benchmark mode stays off: on an H100 its search cost the first --preset fast epoch 3-4 s (0.8 s
        # without it), more than it saves on nets this small
        self.precision = pick_precision(cfg.precision, self.device, convolutional=self.task.convolutional)
        torch.manual_seed(cfg.seed)
        self.prep = self.task.prepare(cfg, folder, self.device, allow_download, self.reporter)
        self.raw_model = tasks.new_model(cfg, self.prep.model_config).to(self.device)
        if self.prep.channels_last:
            self.raw_model = self.raw_model.to(memory_format=torch.channels_last)
        self.optimizer = make_optimizer(self.raw_model, cfg)
        self.scheduler = make_scheduler(self.optimizer, cfg, self.prep.batches.steps_per_epoch(cfg.batch_size))
        self.early = EarlyStopping(cfg.patience)
        if previous is not None:
            ckpt_io.restore_training(previous, resume, self.raw_model, self.optimizer, self.scheduler, self.early)
            self.state = LoopState(epoch=int(previous.train_state["epoch"]), history=list(previous.history),
                                   best_weights={k: v.to(self.device) for k, v in previous.weights.items()})
        self.info = {**self.prep.data_info, "processes": self.world.size}
        self.setup_seconds = time.perf_counter() - started

    def wrap(self) -> torch.nn.Module:
        """What trains: the model itself, or DistributedDataParallel / torch.compile around it."""
        model = self.raw_model
        if self.world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            model = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if self.cfg.compile:
            model = torch.compile(model)
        n_params = sum(p.numel() for p in self.raw_model.parameters())
        where = f"{self.device}" + (f", {self.world.size} processes" if self.world.distributed else "")
        self.reporter.info(f"model {self.cfg.model} ({n_params:,} parameters) on {where}; "
                           f"{self.info['train']:,} train / {self.info['val']:,} val")
        if self.precision.dtype is not None:
            dtype = str(self.precision.dtype).removeprefix("torch.")
            self.reporter.info(f"mixed precision: {dtype} autocast on {self.precision.device_type}")
        return model

    def fit(self, extra: list[Callback] = ()) -> None:
        callbacks = [self.reporter, _WriteCheckpoint(self), _WriteLog(self), *extra]
        self.state = fit(self.wrap(), self.raw_model, self.optimizer, self.scheduler, self.early, self.prep.batches,
                         self.cfg, self.state, callbacks, self.world, self.precision)
        self.reporter.info(self.state.stop_reason)

    def test(self, run_test: bool = True) -> dict[str, Any]:
        """The best epoch's weights, scored on the test set (rank 0), written as the finished checkpoint."""
        self.raw_model.load_state_dict(self.state.best_weights)
        self.raw_model.eval()
        history = self.state.history
        best = min(history, key=lambda r: (r["val_loss"] if r["val_loss"] is not None else r["train_loss"]))
        tested = time.perf_counter()
        if self.prep.calibrate is not None and self.world.is_main:
            self.prep.input_meta.update(self.prep.calibrate(self.raw_model))
        scores = self.prep.test(self.raw_model) if run_test and self.world.is_main else {}
        metrics = {
            **scores,
            "val_accuracy": best["val_accuracy"],
            "val_loss": best["val_loss"],
            "best_epoch": best["epoch"],
            "epochs_run": self.state.epoch,
            "train_seconds": sum(r["seconds"] for r in history),
            # this process's wall time outside the epochs: the data onto the device and the model, the test pass
            "setup_seconds": self.setup_seconds,
            "test_seconds": time.perf_counter() - tested if scores else 0.0,
            "dataset_note": self.info["note"],
        }
        if self.world.is_main:
            ckpt_io.save(self.out, self.snapshot("complete", metrics))
        return self.world.share(metrics)

    def snapshot(self, status: str, metrics: dict[str, Any]) -> ckpt_io.Checkpoint:
        from digitkit.models.registry import config_to_dict

        train_tensors, optim_meta = ckpt_io.training_tensors(self.raw_model, self.optimizer)
        st, prep = self.state, self.prep
        return ckpt_io.Checkpoint(
            model_name=self.cfg.model, model_config=config_to_dict(prep.model_config), dataset=prep.dataset,
            classes=prep.classes, input=prep.input_meta, weights=st.best_weights, train_config=self.cfg.to_dict(),
            history=st.history, metrics=metrics, versions=ckpt_io.versions(),
            train_state={"epoch": st.epoch, "status": status, "stop_reason": st.stop_reason,
                         "early_stopping": self.early.state_dict(), "scheduler": self.scheduler.state_dict(),
                         "optimizer": optim_meta, "data": self.info},
            train_tensors=train_tensors,
        )


def check_writable(out: Path) -> None:
    """Refuse an output path that cannot be written, or must not be replaced (a device, a FIFO, a symbolic link:
    the atomic rename would put a regular file in its place), before spending minutes on training."""
    if out.is_symlink():
        raise CheckpointError(f"cannot write checkpoint {out}: it is a symbolic link; give the path it points to")
    if out.exists() and not out.is_file():
        raise CheckpointError(f"cannot write checkpoint {out}: it is " + ("a directory" if out.is_dir() else "not a regular file"))
    problem = folder_problem(out.parent)
    if problem:
        raise CheckpointError(f"cannot write checkpoint {out}: {problem}")


def train_to(out: Path, cfg: TrainConfig, device: torch.device, world: World, reporter: Any, folder: Path,
             allow_download: bool, previous: ckpt_io.Checkpoint | None, resume: Any, callbacks: list[Callback],
             test: bool) -> tuple[TrainingRun, dict[str, Any]]:
    """A whole run writing `out`, which rank 0 holds alone meanwhile (a second run on it is refused): its metrics.
    Ctrl-C, a signal or a diverging loss end it with one line that says what is saved."""
    if world.is_main:
        check_writable(out)
    with exclusive(out) if world.is_main else contextlib.nullcontext():
        run = TrainingRun(cfg, out, device, world, reporter)
        run.build(folder, allow_download, previous, resume)
        if previous is not None:
            reporter.info(f"resuming {resume} after epoch {run.state.epoch}")
        try:
            run.fit(callbacks)
        except Diverged as exc:
            kept = f"; epoch {exc.epoch - 1} is saved in {out}" if run.state.epoch > 0 else "; nothing was saved"
            raise DigitkitError(f"{exc}{kept}") from None
        except KeyboardInterrupt:
            if run.state.epoch > 0 or previous is not None:
                raise TrainingInterrupted(
                    f"interrupted during epoch {run.state.epoch + 1}; epoch {run.state.epoch} is saved in {out}; "
                    f"continue with: digitkit train --resume {out}"
                ) from None
            raise TrainingInterrupted("interrupted before the first epoch finished; nothing was saved") from None
        return run, run.test(test)
