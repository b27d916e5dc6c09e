"""Every knob of a training run, declared once: `TrainConfig` is stored in the checkpoint so a run can be
repeated, and each field's metadata (help, short flag, choices) is what the `train` command's options, their help,
config files and `check` are made from. Also how a run's effective config is resolved, resumed and checked."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any


def option(default: Any, help: str, short: str | None = None, choices: tuple[str, ...] | None = None,
           shown: str | None = None) -> Any:
    """A `TrainConfig` field that is also a `digitkit train --NAME` option; `shown` words a default that is no
    plain value."""
    return field(default=default, metadata={"help": help, "short": short, "choices": choices, "shown": shown})


# speech feature normalisations (`data.audio.LogMel`), declared here so options and features share one list
FEATURE_NORMS = ("cmn", "cmvn")


@dataclass
class TrainConfig:
    dataset: str = field(default="mnist", metadata={"cli": "argument"})
    model: str = option("cnn", "Model family: cnn or resnet for images, lstm or gru for speech.", "-m",
                        ("cnn", "resnet", "lstm", "gru"), shown="cnn for images, lstm for speech")
    preset: str = option("default", "Named settings: default, seed (the seed project's 128/192/256 CNN), fast (time to "
                         "accuracy), accurate (best accuracy); explicit options override them.", "-p")
    model_options: dict[str, Any] = field(default_factory=dict, metadata={"cli": "-o KEY=VALUE"})
    epochs: int = option(50, "Most epochs to run.", "-e")
    batch_size: int = option(64, "Samples per step, over all processes.", "-b")
    lr: float = option(1e-3, "Learning rate (the peak of a onecycle schedule).")
    optimizer: str = option("adam", "adam, adamw or sgd (Nesterov momentum 0.9).", choices=("adam", "adamw", "sgd"))
    weight_decay: float = option(0.0, "Weight decay.")
    val_split: float = option(0.1, "Fraction of the training set held out for validation (a fixed, seeded split).")
    patience: int = option(3, "Early stopping: epochs without a better val loss before stopping; 0 turns it off.")
    schedule: str = option("plateau", "plateau (cut the LR when val loss stalls) or onecycle (warm up to --lr, anneal "
                           "over the run, every batch).", choices=("plateau", "onecycle"))
    lr_factor: float = option(0.2, "plateau: multiply the LR by this when val loss stalls.")
    lr_patience: int = option(2, "plateau: epochs without a better val loss before the LR is cut.")
    min_lr: float = option(1e-4, "plateau: the LR's floor.")
    label_smoothing: float = option(0.0, "Label smoothing of the cross-entropy.")
    grad_clip: float | None = option(None, "Clip the gradient's global norm (the recurrent CTC models need it).")
    augment: bool = option(True, "Random per-sample geometry (images) or SpecAugment masks (speech) on training batches.")
    outliers: bool = option(True, "Digits (mnist): also train on made-up non-digits (pen strokes, two digits in one box, "
                            "typeset letters and symbols) given no confident class, so predict can reject letters, "
                            "symbols and scribbles.")
    styles: bool = option(False, "Digits (mnist): also train on copies of some training digits drawn as other hands "
                          "and signs write them (slashed zeros, barred sevens, outline lettering); reads those better "
                          "at about 0.07 points of MNIST test accuracy.")
    tta: bool = option(False, "Images: score the test set, and later evaluate/predict, on mirrored and 1-pixel-shifted "
                       "copies too.")
    seed: int = option(0, "The same seed on the same machine gives the same run, bit for bit.")
    limit: int | None = option(None, "Train on N training samples only (quick runs); validation still uses the whole "
                               "held-out split.", shown="all")
    target_accuracy: float | None = option(None, "Stop once val accuracy reaches this fraction, e.g. 0.99.", shown="none")
    holdout_speaker: str | None = option(None, "fsdd, digits: test on this FSDD speaker's recordings, train on none "
                                         "of them.", shown="none")
    holdout_fold: int | None = option(None, "digits: test on the AN4 speakers of this fold (1-4), train on the others.",
                                      shown="none")
    words: list[str] | None = option(None, "speechcommands: comma-separated words to recognize.", shown="all present")
    max_words: int = option(7, "Speech: the longest joined training sequence, in words.")
    bucket: bool = option(False, "Speech: batch training sequences of similar length, so a batch pads little (its "
                          "recurrent layers run as many steps as its longest sequence).",
                          shown="off; on for speech on CUDA and for `digits`")
    feature_norm: str = option("cmn", "Speech: how each utterance's log-mel features are normalised: cmn (each band's "
                               "mean taken off, one scale for all bands, so the bands a vowel is strong in stay "
                               "stronger) or cmvn (each band to unit variance, as checkpoints before it).",
                               choices=FEATURE_NORMS)
    precision: str = option("auto", "Autocast: auto (bf16 on CUDA where supported, else fp16; bf16 for conv nets on CPUs "
                            "with bf16 matrix instructions; else fp32), fp32, bf16 or fp16.",
                            choices=("auto", "fp32", "bf16", "fp16"))
    compile: bool = option(False, "torch.compile the model before training (pays off on long GPU runs).")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """A config stored in a checkpoint: options it predates take the value its run had."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**STORED_BEFORE, **{k: v for k, v in values.items() if k in known}})


# options added after checkpoints were shipped: the value a stored config without them was trained with
STORED_BEFORE = {"feature_norm": "cmvn"}


# what a resumed run may change; a onecycle run cannot change epochs (its schedule spans the original ones)
RESUME_MAY_CHANGE = {"epochs", "target_accuracy", "patience", "precision", "compile"}


def resolve(dataset: str, options: dict[str, Any], device_type: str = "cpu") -> TrainConfig:
    """The effective config of a new run: built-in defaults < preset (with its settings for the device type, see
    presets.CUDA_TRAIN) < `options`. Checked in full, the model included, before any data is read."""
    from digitkit import tasks
    from digitkit.errors import DigitkitError
    from digitkit.presets import apply_preset

    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise DigitkitError(f"unknown training option(s): {', '.join(unknown)}")
    task, dataset = tasks.for_dataset(dataset)
    model = options.get("model") or task.models[0]
    if tasks.for_model(model) is not task:
        raise DigitkitError(f"model {model!r} does not fit {dataset}; use one of: {', '.join(task.models)}")
    preset = options.get("preset") or "default"
    model_options, train_overrides = apply_preset(preset, model, device_type, dataset)
    values = {**train_overrides, **{k: v for k, v in options.items() if v is not None}}
    values["model_options"] = {**model_options, **(options.get("model_options") or {})}
    values.update(dataset=dataset, model=model, preset=preset)
    cfg = TrainConfig(**values)
    check(cfg)
    _check_model_options(cfg, task)
    return cfg


def resumed(previous: Any, options: dict[str, Any], dataset: str | None = None) -> TrainConfig:
    """A checkpoint's own config with the few changes a resumed run allows; a `dataset` given must be its own."""
    from digitkit import tasks
    from digitkit.errors import DigitkitError

    cfg = TrainConfig.from_dict(previous.train_config)
    named = tasks.for_dataset(dataset)[1] if dataset else cfg.dataset
    if named != cfg.dataset:
        raise DigitkitError(f"the checkpoint to resume was trained on {cfg.dataset}, not {named}: "
                            "leave out DATASET to continue it, or give a checkpoint of that dataset")
    changed = {k for k, v in options.items() if v is not None and k in cfg.to_dict() and v != getattr(cfg, k)}
    if changed - RESUME_MAY_CHANGE:
        raise DigitkitError(
            f"cannot change {', '.join(sorted(changed - RESUME_MAY_CHANGE))} when resuming; "
            f"only {', '.join(sorted(RESUME_MAY_CHANGE))} may differ from the checkpoint's run"
        )
    if "epochs" in changed and cfg.schedule == "onecycle":
        raise DigitkitError("cannot change --epochs when resuming a onecycle run: its schedule spans the original epochs")
    for key in changed:
        setattr(cfg, key, options[key])
    check(cfg)
    return cfg


def _check_model_options(cfg: TrainConfig, task: Any) -> None:
    """Build the model once on the meta device (no memory, no data), so a bad `-o` option fails at once instead of
    after the dataset has loaded. The speech vocabulary comes from the data: a stand-in of ten words is used here."""
    import torch

    from digitkit.tasks import model_config, new_model

    with torch.device("meta"):
        new_model(cfg, model_config(cfg, task.model_base(cfg, words=10)))


def check(cfg: TrainConfig) -> None:
    from digitkit.errors import DigitkitError

    problems = []
    if cfg.epochs < 1:
        problems.append("--epochs must be at least 1")
    if cfg.batch_size < 1:
        problems.append("--batch-size must be at least 1")
    if not 0 < cfg.lr < math.inf:
        problems.append("--lr must be a positive finite number")
    if not 0 <= cfg.weight_decay < math.inf:
        problems.append("--weight-decay must be 0 or a positive finite number")
    if not 0 < cfg.lr_factor < 1:
        problems.append("--lr-factor must be in (0, 1)")
    if cfg.lr_patience < 0:
        problems.append("--lr-patience must be 0 or more")
    if not 0 <= cfg.min_lr < math.inf:
        problems.append("--min-lr must be 0 or a positive finite number")
    if not 0 <= cfg.label_smoothing < 1:
        problems.append("--label-smoothing must be in [0, 1)")
    if cfg.grad_clip is not None and not 0 < cfg.grad_clip < math.inf:
        problems.append("--grad-clip must be a positive finite number")
    if not 0 <= cfg.seed < 2**32:
        problems.append("--seed must be in [0, 2^32)")
    if cfg.max_words < 1:
        problems.append("--max-words must be at least 1")
    if not 0 <= cfg.val_split < 1:
        problems.append("--val-split must be in [0, 1)")
    if cfg.limit is not None and cfg.limit < 1:
        problems.append("--limit must be at least 1")
    if cfg.patience < 0:
        problems.append("--patience must be 0 (off) or more")
    for f in dataclasses.fields(cfg):
        choices = f.metadata.get("choices")
        if choices and getattr(cfg, f.name) not in choices:
            problems.append(f"{flag(f.name)} must be {', '.join(choices[:-1])} or {choices[-1]}, not {getattr(cfg, f.name)!r}")
    if cfg.target_accuracy is not None and not 0 < cfg.target_accuracy <= 1:
        problems.append("--target-accuracy is a fraction in (0, 1], e.g. 0.99")
    if cfg.target_accuracy is not None and cfg.val_split == 0:
        problems.append("--target-accuracy is checked on validation data: give a --val-split above 0")
    if problems:
        raise DigitkitError("; ".join(problems))


def flag(name: str) -> str:
    """The long option of a `TrainConfig` field."""
    return "--" + name.replace("_", "-")


def cli_options() -> list[dataclasses.Field]:
    """The `TrainConfig` fields that are `digitkit train` options, in declaration order."""
    return [f for f in dataclasses.fields(TrainConfig) if "help" in f.metadata]


def default_text(name: str) -> str:
    """A field's default as help and docs show it: the built-in value, and where the default preset of a model
    family or dataset sets another (e.g. epochs: "50; resnet 120; lstm, gru 60; digits 70")."""
    from digitkit.presets import DATASET_TRAIN, PRESETS

    f = next(f for f in dataclasses.fields(TrainConfig) if f.name == name)
    if f.metadata.get("shown"):
        return f.metadata["shown"]
    shown = lambda v: "off" if v is None else ("on" if v is True else "off" if v is False else str(v))
    by_value: dict[str, list[str]] = {}
    for family, (_, train) in PRESETS["default"].items():
        if name in train and train[name] != f.default:
            by_value.setdefault(shown(train[name]), []).append(family)
    for (preset, dataset), train in DATASET_TRAIN.items():
        if preset == "default" and name in train:
            by_value.setdefault(shown(train[name]), []).append(dataset)
    return "; ".join([shown(f.default)] + [f"{', '.join(fams)} {value}" for value, fams in by_value.items()])
