"""Search spaces for `digitkit tune`: what to vary per model family, how a TOML file changes it, and how one
Optuna trial's values become training options.

A parameter is named after what it sets: a `TrainConfig` field (lr, optimizer, batch_size, ...), a model option
(dense, hidden, dropout_conv, ...), or one entry of a list-valued model option as NAME_1, NAME_2, ... (filters_1
is the first conv block's filters). Each is a table with `choices = [...]`, or `low`/`high` (ints or floats)
with optional `log = true` or `step`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from digitkit.errors import DigitkitError
from digitkit.config import TrainConfig

_TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)} - {"dataset", "model", "preset", "model_options"}

# Like the seed's Keras Tuner space (filters per conv block, dense units, dropouts, learning rate, optimizer)
# plus batch size; each family's default model lies inside its space. The cnn sizes start at the default's:
# short trials favour small nets that learn fast but end lower (CHANGELOG: a space reaching down to 16 filters
# picked a net that trained in full to less than the default).
DEFAULT_SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "cnn": {
        "filters_1": {"choices": [32, 64, 96, 128]},
        "filters_2": {"choices": [64, 128, 192, 256]},
        "filters_3": {"choices": [128, 192, 256]},
        "convs_per_block": {"choices": [1, 2]},
        "dense": {"choices": [128, 256, 512]},
        "dropout_conv": {"low": 0.1, "high": 0.5, "step": 0.05},
        "dropout_dense": {"low": 0.2, "high": 0.6, "step": 0.05},
        "lr": {"low": 3e-4, "high": 1e-2, "log": True},
        "optimizer": {"choices": ["adam", "adamw", "sgd"]},
        "batch_size": {"choices": [32, 64, 128, 256]},
    },
    "resnet": {  # the stage layout (blocks) stays as set: 0 is a real value there, not "drop this stage"
        "stem": {"choices": [32, 64]},
        "widths_1": {"choices": [64, 128]},
        "widths_2": {"choices": [128, 256]},
        "widths_3": {"choices": [256, 512]},
        "dropout": {"low": 0.0, "high": 0.3, "step": 0.05},
        "lr": {"low": 0.02, "high": 0.5, "log": True},
        "label_smoothing": {"low": 0.0, "high": 0.3, "step": 0.05},
        "batch_size": {"choices": [128, 256, 512]},
    },
    "lstm": {
        "hidden": {"choices": [64, 128, 192, 256]},
        "layers": {"low": 1, "high": 3},
        "conv_channels": {"choices": [0, 64, 96, 128]},
        "stride": {"choices": [2, 4]},
        "dropout": {"low": 0.0, "high": 0.4, "step": 0.05},
        "lr": {"low": 5e-4, "high": 1e-2, "log": True},
        "batch_size": {"choices": [8, 16, 32]},
    },
}
DEFAULT_SPACES["gru"] = DEFAULT_SPACES["lstm"]


def _kind(name: str, spec: dict[str, Any]) -> str:
    if not isinstance(spec, dict):
        raise DigitkitError(f"search space: {name} must be a table, e.g. [{name}] low = 0.1, high = 0.5")
    if "choices" in spec:
        if not isinstance(spec["choices"], list) or not spec["choices"]:
            raise DigitkitError(f"search space: {name}.choices must be a non-empty list")
        return "categorical"
    if "low" not in spec or "high" not in spec:
        raise DigitkitError(f"search space: {name} needs choices = [...] or low and high")
    low, high = spec["low"], spec["high"]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or low > high:
        raise DigitkitError(f"search space: {name} needs numbers low <= high, not {low!r}, {high!r}")
    if spec.get("log") and low <= 0:
        raise DigitkitError(f"search space: {name} has log = true, so low must be above 0")
    unknown = set(spec) - {"low", "high", "log", "step"}
    if unknown:
        raise DigitkitError(f"search space: {name} has unknown key(s) {', '.join(sorted(unknown))}")
    return "int" if isinstance(low, int) and isinstance(high, int) and isinstance(spec.get("step", 1), int) else "float"


def load_space(model: str, path: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """The model family's default space, with a TOML file's tables replacing or adding parameters
    (`replace = true` at the top of the file drops the defaults)."""
    space = {k: dict(v) for k, v in DEFAULT_SPACES.get(model, {}).items()}
    if path is not None:
        try:
            with Path(path).open("rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise DigitkitError(f"cannot read search space {path}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise DigitkitError(f"search space {path} is not valid TOML: {exc}") from None
        if data.pop("replace", False):
            space = {}
        space.update(data)
    if not space:
        raise DigitkitError(f"empty search space for model {model!r}")
    for name, spec in space.items():
        _kind(name, spec)
    return space


def suggest(trial: Any, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One trial's value for every parameter, by Optuna's suggest_* calls."""
    values = {}
    for name, spec in space.items():
        kind = _kind(name, spec)
        if kind == "categorical":
            values[name] = trial.suggest_categorical(name, spec["choices"])
        elif kind == "int":
            values[name] = trial.suggest_int(name, spec["low"], spec["high"], step=spec.get("step", 1), log=bool(spec.get("log")))
        else:
            values[name] = trial.suggest_float(name, float(spec["low"]), float(spec["high"]), step=spec.get("step"), log=bool(spec.get("log")))
    return values


def grid(space: dict[str, dict[str, Any]]) -> dict[str, list[Any]]:
    """Every parameter's values for Optuna's GridSampler: choices as given, ranges only with a step."""
    out = {}
    for name, spec in space.items():
        kind = _kind(name, spec)
        if kind == "categorical":
            out[name] = list(spec["choices"])
        elif "step" in spec:
            count = int(math.floor((spec["high"] - spec["low"]) / spec["step"] + 1e-9)) + 1
            out[name] = [spec["low"] + i * spec["step"] if kind == "int" else round(spec["low"] + i * spec["step"], 10) for i in range(count)]
        else:
            raise DigitkitError(f"--sampler grid needs a finite set of values: give {name} choices = [...] or a step")
    return out


def to_options(values: dict[str, Any], model_config: type) -> dict[str, Any]:
    """Trial values -> training options: TrainConfig fields as they are, the rest as model options, NAME_i
    entries gathered into the list option NAME."""
    fields = {f.name: f for f in dataclasses.fields(model_config)}
    options: dict[str, Any] = {}
    model_options: dict[str, Any] = {}
    lists: dict[str, dict[int, Any]] = {}
    for name, value in values.items():
        if isinstance(value, float):
            value = float(f"{value:.15g}")  # stepped floats come back as 0.30000000000000004
        if name in _TRAIN_FIELDS:
            options[name] = value
            continue
        match = re.fullmatch(r"(.+)_(\d+)", name)
        if match and match.group(1) in fields and isinstance(fields[match.group(1)].default, tuple):
            lists.setdefault(match.group(1), {})[int(match.group(2))] = value
        elif name in fields:
            model_options[name] = value
        else:
            raise DigitkitError(f"search space: {name} is neither a training option nor an option of this model "
                                f"({', '.join(sorted(fields))})")
    for name, entries in lists.items():
        if sorted(entries) != list(range(1, len(entries) + 1)):
            raise DigitkitError(f"search space: {name}_1 ... {name}_{len(entries)} must be numbered from 1 without gaps")
        model_options[name] = [entries[i] for i in sorted(entries) if entries[i]]  # a 0 entry drops that block
    if model_options:
        options["model_options"] = model_options
    return options


def starting_point(space: dict[str, dict[str, Any]], cfg: TrainConfig, model_config: type) -> dict[str, Any] | None:
    """The run's own config (the family's defaults plus any base options) as values of the space, to be the
    study's first trial: the best trial is then never worse than the defaults on validation. None when a
    default lies outside the space."""
    defaults = {f.name: f.default for f in dataclasses.fields(model_config)}
    options = {**defaults, **cfg.model_options}
    values: dict[str, Any] = {}
    for name, spec in space.items():
        match = re.fullmatch(r"(.+)_(\d+)", name)
        if name in _TRAIN_FIELDS:
            value = getattr(cfg, name)
        elif match and isinstance(options.get(match.group(1)), (list, tuple)):
            entries = list(options[match.group(1)])
            index = int(match.group(2)) - 1
            value = entries[index] if index < len(entries) else 0
        elif name in options:
            value = options[name]
        else:
            return None
        kind = _kind(name, spec)
        if kind == "categorical":
            if value not in spec["choices"]:
                return None
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not spec["low"] <= value <= spec["high"]:
            return None
        values[name] = value
    return values
