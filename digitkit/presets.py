"""Named starting points for `digitkit train --preset NAME`: model size plus training settings, per model family."""

from __future__ import annotations

from typing import Any

from digitkit.errors import DigitkitError

# The seed-style recipe (Adam, early stopping, LR on plateau) suits images; the recurrent CTC models learn best
# with a one-cycle schedule over a fixed number of epochs.
# 60 epochs of the stride-4 LSTM: 97.3 % single FSDD digits, 1.3 % WER on 3-7-digit strings, 456 s on 2 cores.
_SPEECH_TRAIN = {"epochs": 60, "batch_size": 16, "lr": 3e-3, "schedule": "onecycle", "patience": 0, "grad_clip": 5.0}

# The fast CIFAR-10 ResNet recipe: SGD with Nesterov momentum at a high peak LR, one-cycle, label smoothing
# 0.2, reflect-padded shifts, flips and cutout; all training images (no validation split: a fixed schedule needs
# no early stopping), and test-time flips and shifts. 120 epochs of 20,000 images reach 90.22 % on the partial
# CIFAR-10 here: about 137 s per bf16 epoch on 2 Zen 4 cores, about 63 s on 2 AMX cores (README, Results).
_RESNET_TRAIN = {"epochs": 120, "batch_size": 256, "lr": 0.2, "optimizer": "sgd", "weight_decay": 5e-4, "schedule": "onecycle",
                 "patience": 0, "label_smoothing": 0.2, "val_split": 0.0, "tta": True}

# preset -> model family -> (model options, TrainConfig fields it changes)
PRESETS: dict[str, dict[str, tuple[dict[str, Any], dict[str, Any]]]] = {
    # Sized so `digitkit train mnist` passes 99.3 % in about four minutes on a 2-core CPU.
    "default": {
        "cnn": ({"filters": [32, 64, 128], "dense": 128}, {}),
        "resnet": ({}, _RESNET_TRAIN),
        "lstm": ({}, _SPEECH_TRAIN),
        "gru": ({}, _SPEECH_TRAIN),
    },
    # The seed project's Keras Tuner result: conv filters 128 then 192, dense 256, Adam.
    "seed": {"cnn": ({"filters": [128, 192], "dense": 256}, {})},
    # Best single-model accuracy: two convs per block, augmentation, label smoothing, AdamW and a one-cycle LR
    # over all 60,000 images: 99.73 % MNIST test accuracy in about 10 minutes on 2 cores (bench/best_accuracy.py).
    "accurate": {
        "cnn": (
            {"filters": [32, 64, 128], "convs_per_block": 2, "dense": 256},
            {"epochs": 12, "batch_size": 128, "lr": 3e-3, "schedule": "onecycle", "patience": 0, "label_smoothing": 0.1,
             "optimizer": "adamw", "weight_decay": 0.05, "augment": True, "val_split": 0.0},
        )
    },
    # Time to accuracy: a CNN sized for 28x28 digits, two epochs on all 60,000 images with a one-cycle LR;
    # 99.2-99.3 % MNIST test accuracy in about 15 s on 2 CPU cores (bench/time_to_accuracy.py).
    "fast": {
        "cnn": (
            {"filters": [16, 32, 64], "dense": 128},
            {"epochs": 2, "batch_size": 64, "lr": 4e-3, "schedule": "onecycle", "patience": 0, "augment": False,
             "val_split": 0.0, "outliers": False},
        )
    },
}


# (preset, model family or dataset) -> TrainConfig fields that change on a CUDA GPU, on top of the CPU recipe (the
# family's entry first, then the dataset's). There a step of these small nets costs its kernel launches, not its
# arithmetic, so fewer, larger batches finish the same epochs sooner; the peak LR grows with the batch (about as its
# square root). Each entry was checked to keep the CPU recipe's accuracy by a run of its settings on a CPU (the
# arithmetic is the same there; only the time differs).
CUDA_TRAIN: dict[tuple[str, str], dict[str, Any]] = {
    # batch 512 at lr 0.01 for the same 2 epochs: 99.16 % MNIST test accuracy in 1.2 s of training on an H100 (0.9 s
    # once the process has run a first time; 99.15 % on a CPU)
    ("fast", "cnn"): {"batch_size": 512, "lr": 1e-2},
    # the default MNIST recipe at batch 512, lr 6e-3: 99.51 % MNIST test accuracy on a CPU, as at batch 128
    # (118 steps an epoch instead of 469)
    ("default", "mnist"): {"batch_size": 512, "lr": 6e-3},
    # sequences batched by length: the padded audio of an FSDD epoch falls from 2.05x the real audio to 1.15x, and
    # the recurrent layers' sequential steps (a batch's longest sequence) by 42 %; the same 60 epochs with it on a
    # CPU: 97.00 % FSDD test digits, 1.57 % WER (the shipped run without it: 97.33 %, 1.31 %; one recording apart,
    # within a run's variance; its val accuracy 97.4 % against 95.9 %). On a CPU an FSDD epoch took 7.1 s with it
    # against 7.3 s, measured when the CPU still trained on the packed batch; `digits` turns it on everywhere (below)
    ("default", "lstm"): {"bucket": True},
    ("default", "gru"): {"bucket": True},
}


# (preset, dataset) -> TrainConfig fields a dataset's recipe changes on top of its model family's. `digits` mixes
# four corpora with noise, reverb and tempo changes: twice the sequences of an FSDD epoch, and harder ones, so
# larger batches (1.3x the sequences per second on 2 CPU cores) and more epochs. Its epochs mix 0.5-s noise with
# 7-word strings and runs of other speech, and a CPU trains the recurrent layers on the padded batch, so sequences
# are batched by length (`bucket`): `bench/speech_padding.py`; seed 0 on 2 CPU cores, 724 s of training against
# 1,040 s without it.
DATASET_TRAIN: dict[tuple[str, str], dict[str, Any]] = {
    ("default", "digits"): {"batch_size": 32, "lr": 4e-3, "epochs": 70, "bucket": True},
    # MNIST with made-up non-digits in every batch (--outliers): the plateau recipe ended at 99.40 %; one-cycle AdamW
    # with label smoothing reached 99.45 % in 12 epochs and 99.51 % in 16
    ("default", "mnist"): {"epochs": 16, "batch_size": 128, "lr": 3e-3, "schedule": "onecycle", "patience": 0,
                           "label_smoothing": 0.1, "optimizer": "adamw", "weight_decay": 0.05},
}


def apply_preset(name: str, model: str, device_type: str = "cpu", dataset: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    """-> (model options, train-config overrides) for a preset and model family on a device type and dataset."""
    if name not in PRESETS:
        raise DigitkitError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    families = PRESETS[name]
    if model not in families:
        raise DigitkitError(f"preset {name!r} does not apply to model {model!r} (it covers: {', '.join(families)})")
    options, train = families[model]
    train = {**train, **DATASET_TRAIN.get((name, dataset), {})}
    if device_type == "cuda":
        train = {**train, **CUDA_TRAIN.get((name, model), {}), **CUDA_TRAIN.get((name, dataset), {})}
    return dict(options), dict(train)
