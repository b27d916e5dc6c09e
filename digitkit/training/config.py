"""Every knob of a training run in one dataclass; it is stored in the checkpoint so a run can be repeated."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainConfig:
    dataset: str = "mnist"
    model: str = "cnn"
    preset: str = "default"
    model_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 50
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"  # adam | adamw | sgd
    weight_decay: float = 0.0
    val_split: float = 0.1
    patience: int = 3  # early stopping on val loss; 0 turns it off
    schedule: str = "plateau"  # plateau: ReduceLROnPlateau per epoch; onecycle: OneCycleLR per batch, peak at `lr`
    lr_factor: float = 0.2  # ReduceLROnPlateau
    lr_patience: int = 2
    min_lr: float = 1e-4
    label_smoothing: float = 0.0
    grad_clip: float | None = None  # clip the gradient's global norm (recurrent CTC models need it)
    augment: bool = True
    tta: bool = False  # images: score the test set (and predictions) on mirrored and shifted copies too
    seed: int = 0
    limit: int | None = None
    target_accuracy: float | None = None  # stop once val accuracy reaches this
    holdout_speaker: str | None = None  # speech (fsdd): test on this speaker only, train on the others
    words: list[str] | None = None  # speech (speechcommands): the words to recognize; default all present
    max_words: int = 7  # speech: longest joined training sequence
    precision: str = "auto"  # auto (CUDA: bf16 where supported, else fp16; CPUs with AMX or AVX512-BF16: bf16 for conv nets; else fp32) | fp32 | bf16 | fp16
    compile: bool = False  # torch.compile the model before training

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})
