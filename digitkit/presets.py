"""Named starting points for `digitkit train --preset NAME`: model size plus training settings."""

from __future__ import annotations

from typing import Any

from digitkit.errors import DigitkitError

# Each preset: the model family, its options, and TrainConfig fields it changes.
PRESETS: dict[str, dict[str, Any]] = {
    # Sized so `digitkit train mnist` passes 99.3 % in about ten minutes on a 2-core CPU.
    "default": {"model_options": {"cnn": {"filters": [32, 64, 128], "dense": 128}, "resnet": {}}, "train": {}},
    # The seed project's Keras Tuner result: conv filters 128 then 192, dense 256, Adam.
    "seed": {"model_options": {"cnn": {"filters": [128, 192], "dense": 256}}, "train": {}},
    # Time to accuracy: a CNN sized for 28x28 digits, two epochs on all 60,000 images with a one-cycle LR;
    # 99.2-99.3 % MNIST test accuracy in about 15 s on 2 CPU cores (bench/time_to_accuracy.py).
    # Best single-model accuracy: two convs per block, augmentation, label smoothing, AdamW and a one-cycle LR
    # over all 60,000 images (bench/best_accuracy.py measures it).
    "accurate": {
        "model_options": {"cnn": {"filters": [32, 64, 128], "convs_per_block": 2, "dense": 256}},
        "train": {"epochs": 12, "batch_size": 128, "lr": 3e-3, "schedule": "onecycle", "patience": 0, "label_smoothing": 0.1,
                  "optimizer": "adamw", "weight_decay": 0.05, "augment": True, "val_split": 0.0},
    },
    "fast": {
        "model_options": {"cnn": {"filters": [16, 32, 64], "dense": 128}},
        "train": {"epochs": 2, "batch_size": 64, "lr": 4e-3, "schedule": "onecycle", "patience": 0, "augment": False, "val_split": 0.0},
    },
}


def preset_names() -> list[str]:
    return list(PRESETS)


def apply_preset(name: str, model: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """-> (model options, train-config overrides) for a preset and model family."""
    if name not in PRESETS:
        raise DigitkitError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    options = preset["model_options"]
    if model not in options:
        raise DigitkitError(f"preset {name!r} does not apply to model {model!r} (it covers: {', '.join(options)})")
    return dict(options[model]), dict(preset["train"])
