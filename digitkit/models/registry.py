"""Model name -> (config dataclass, module class); a checkpoint rebuilds its model from these alone."""

from __future__ import annotations

import dataclasses
from typing import Any

from digitkit.errors import CheckpointError, DigitkitError


def _table() -> dict[str, tuple[type, type]]:
    from digitkit.models.cnn import CNN, CNNConfig
    from digitkit.models.resnet import ResNet, ResNetConfig
    from digitkit.models.speech import SpeechConfig, SpeechRecognizer

    return {"cnn": (CNNConfig, CNN), "resnet": (ResNetConfig, ResNet), "lstm": (SpeechConfig, SpeechRecognizer),
            "gru": (SpeechConfig, SpeechRecognizer)}


MODEL_NAMES = ("cnn", "resnet", "lstm", "gru")
IMAGE_MODELS = ("cnn", "resnet")
SPEECH_MODELS = ("lstm", "gru")


def make_config(name: str, values: dict[str, Any]) -> Any:
    """Build a model's config from plain values (JSON lists become tuples), rejecting unknown fields."""
    table = _table()
    if name not in table:
        raise DigitkitError(f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}")
    config_cls = table[name][0]
    known = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise DigitkitError(f"model {name!r} has no option(s) {', '.join(unknown)}")
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return config_cls(**fixed)


def config_class(name: str) -> type:
    """The config dataclass of a model family (what its options are)."""
    table = _table()
    if name not in table:
        raise DigitkitError(f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}")
    return table[name][0]


def build_model(name: str, config: Any):
    table = _table()
    if name not in table:
        raise CheckpointError(f"unknown model {name!r}")
    return table[name][1](config)


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)
