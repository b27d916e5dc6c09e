"""The kinds of data digitkit handles, and the one place that decides which kind a dataset name or a checkpoint is.

Each kind is a `Task` living in its own module (`image.py`, `speech.py`) that owns it end to end: its datasets and
splits, its model families, the batches the training loop draws, the test figures (the same code at the end of
training and in `digitkit evaluate`), and how a user's file becomes a result. Everything above this package asks
the registry below for the task and never branches on the kind itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from digitkit.config import TrainConfig
from digitkit.errors import CheckpointError, DataError, DigitkitError


@dataclass
class Prepared:
    """A training run's data and model description, as a task prepares them."""

    batches: Any  # what the training loop draws from (training.loop.TrainingData)
    model_config: Any
    dataset: str
    classes: list[str]
    input_meta: dict[str, Any]  # stored in the checkpoint: how to turn a user's file into the model's input
    data_info: dict[str, Any]
    test: Callable[[Any], dict[str, Any]]  # the final model -> its test-set metrics
    channels_last: bool
    # the final model -> what its use needs measured on held-out data (e.g. a temperature), merged into input_meta
    # before the test and the finished checkpoint
    calibrate: Callable[[Any], dict[str, Any]] | None = None


@dataclass
class EvalResult:
    checkpoint: str
    dataset: str
    samples: int
    accuracy: float
    loss: float
    classes: list[str]
    per_class: list[dict[str, Any]]
    confusion: list[list[int]]
    history: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""
    sequence_wer: float | None = None  # speech: word error rate on connected strings joined from test recordings
    sequences: int = 0
    recorded_wer: float | None = None  # speech: word error rate on strings recorded as spoken, where the test set has them
    recorded: int = 0
    calibration_error: float | None = None  # images: expected calibration error of the confidences, 15 bins

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Task(Protocol):
    kind: str  # the checkpoint's input.kind
    models: tuple[str, ...]  # model families, the first is the default
    convolutional: bool  # whether bf16 autocast pays on CPUs with bf16 matrix instructions
    use: str  # the command that runs this kind's models on a user's files

    def dataset_name(self, name: str) -> str | None:
        """The canonical name of one of this task's datasets, or None."""

    def dataset_names(self) -> list[str]: ...

    def evaluable_on(self, ckpt: Any) -> list[str]:
        """The datasets whose test split a checkpoint of this kind could be evaluated on."""

    def model_base(self, cfg: TrainConfig, words: int = 10) -> dict[str, Any]:
        """The model options a dataset fixes (`-o` cannot change them); speech sizes its output by `words`."""

    def prepare(self, cfg: TrainConfig, folder: Path, device: Any, allow_download: bool, reporter: Any) -> Prepared: ...

    def evaluate(self, ckpt: Any, path: Path, model: Any, folder: Path, batch_size: int, allow_download: bool,
                 reporter: Any, dataset: str | None = None) -> EvalResult:
        """The test split of the checkpoint's dataset, or of another `dataset` of this kind with the same classes."""


# kind -> (module, task object): a checkpoint's task is imported alone (reading pictures with an ONNX model then
# needs neither torch nor the speech stack)
_KINDS = {"image": ("digitkit.tasks.image", "IMAGE"), "speech": ("digitkit.tasks.speech", "SPEECH")}


def _task(kind: str) -> Task:
    import importlib

    module, name = _KINDS[kind]
    return getattr(importlib.import_module(module), name)


def _tasks() -> tuple[Task, ...]:
    return tuple(_task(kind) for kind in _KINDS)


def for_dataset(name: str) -> tuple[Task, str]:
    """(task, canonical dataset name) for a dataset name as a user may spell it."""
    for task in _tasks():
        canonical = task.dataset_name(name)
        if canonical is not None:
            return task, canonical
    names = [n for task in _tasks() for n in task.dataset_names()]
    raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(names)}")


def for_checkpoint(ckpt: Any, kind: str | None = None) -> Task:
    """The task of a checkpoint; with `kind`, refuse (one line) a checkpoint of another kind for that command."""
    kind_named = ckpt.input.get("kind", "image")
    if kind_named not in _KINDS:
        raise CheckpointError(f"checkpoint of an unknown kind of data ({kind_named!r}); this digitkit knows "
                              f"{', '.join(_KINDS)}")
    found = _task(kind_named)
    if found.dataset_name(ckpt.dataset) is None:
        raise CheckpointError(f"a {found.kind} checkpoint cannot be of dataset {ckpt.dataset!r} (its metadata is "
                              f"damaged or was edited); {found.kind} datasets are {', '.join(found.dataset_names())}")
    if kind is not None and found.kind != kind:
        wanted = _task(kind)
        raise CheckpointError(f"a {ckpt.dataset} {found.kind} model cannot be used by `digitkit {wanted.use}`; "
                              f"use `digitkit {found.use}` for it")
    return found


def for_model(model: str) -> Task:
    """The task whose model families include `model`."""
    for task in _tasks():
        if model in task.models:
            return task
    raise DigitkitError(f"unknown model {model!r}; choose one of: {', '.join(m for t in _tasks() for m in t.models)}")


def _bad_model_options(cfg: TrainConfig, exc: Exception) -> DigitkitError:
    return DigitkitError(f"bad model options {cfg.model_options}: {exc}")


def model_config(cfg: TrainConfig, base: dict[str, Any]) -> Any:
    """The model's config dataclass from what the dataset fixes plus the run's `-o` options."""
    from digitkit.models.registry import make_config

    try:
        return make_config(cfg.model, {**base, **cfg.model_options})
    except (TypeError, ValueError) as exc:
        raise _bad_model_options(cfg, exc) from None


def new_model(cfg: TrainConfig, model_cfg: Any) -> Any:
    """A fresh model for a config; options the config accepted can still be rejected by the model's constructor."""
    from digitkit.models.registry import build_model

    try:
        return build_model(cfg.model, model_cfg)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise _bad_model_options(cfg, exc) from None
