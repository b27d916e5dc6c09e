"""Pretrained checkpoints shipped inside the package, each trained by `digitkit train` on the real data."""

from __future__ import annotations

import os
from pathlib import Path

from digitkit.errors import CheckpointError

_HERE = Path(__file__).resolve().parent
# name -> file; `--model NAME` picks one. digits: `digitkit train digits` (every real digit source, for voices in the
# wild); it is not the default speech model while it scores below fsdd on FSDD's own test split (docs/speech.md).
MODELS = {"mnist": "mnist-cnn.safetensors", "fsdd": "fsdd-lstm.safetensors", "digits": "digits-lstm.safetensors"}
DEFAULT_MODELS = {"image": "mnist", "speech": "fsdd"}


def shipped_files() -> dict[str, Path]:
    """Name -> file of every shipped model (whether or not this install has the file)."""
    return {name: _HERE / file for name, file in MODELS.items()}


def shipped(kind: str = "image", name: str | None = None) -> Path:
    """The file of the shipped model `name`, or of the default model of `kind`."""
    name = name or DEFAULT_MODELS[kind]
    path = _HERE / MODELS[name]
    if not path.is_file():
        raise CheckpointError(f"the shipped {name} model is missing from this install ({path}); pass --model CHECKPOINT")
    return path


def shipped_name(model: str) -> str | None:
    """`model` if it names a shipped model rather than a file (a file of that name in the working folder wins)."""
    return model if model in MODELS and not Path(model).exists() else None


def model_file(model: str | os.PathLike | None, kind: str = "image") -> Path:
    """The file a command's model argument names: a checkpoint file, a shipped model's name (`digits`), or None for
    the default shipped model of `kind`."""
    if model is None:
        return shipped(kind)
    name = shipped_name(str(model))
    return shipped(kind, name) if name else Path(model)
