"""Pretrained checkpoints shipped inside the package, each trained by `digitkit train` on the real data."""

from __future__ import annotations

from pathlib import Path

from digitkit.errors import CheckpointError

_HERE = Path(__file__).resolve().parent
DEFAULT_MODELS = {"image": "mnist-cnn.safetensors", "speech": "fsdd-lstm.safetensors"}


def shipped(kind: str = "image") -> Path:
    path = _HERE / DEFAULT_MODELS[kind]
    if not path.is_file():
        raise CheckpointError(f"the shipped {kind} model is missing from this install ({path}); pass --model CHECKPOINT")
    return path
