"""Training configs as TOML files: `digitkit train --config run.toml`, `--print-config`, `--config-from CKPT`.

A file holds the same keys as `TrainConfig` (the long option names with `_` for `-`), plus a
`[model_options]` table for the model's size. Command-line flags override the file; the file overrides the
preset it names; the preset overrides the built-in defaults.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path
from typing import Any

from digitkit.errors import DigitkitError
from digitkit.config import TrainConfig

# Where a run happens, not what it is: never written into a config file.
_RUN_ONLY = {"device", "out", "resume", "data_dir"}


def _field_types() -> dict[str, Any]:
    return {f.name: f.type for f in dataclasses.fields(TrainConfig)}


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """TOML file -> training options (only keys `TrainConfig` knows; anything else is an error, not ignored)."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise DigitkitError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise DigitkitError(f"config file {path} is a directory") from None
    except tomllib.TOMLDecodeError as exc:
        raise DigitkitError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise DigitkitError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    return check_options(data, str(path))


def check_options(data: dict[str, Any], source: str) -> dict[str, Any]:
    known = _field_types()
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise DigitkitError(f"{source}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if "model_options" in data and not isinstance(data["model_options"], dict):
        raise DigitkitError(f"{source}: model_options must be a table, e.g. [model_options] filters = [32, 64]")
    types = _field_types()
    for key, value in data.items():
        if key == "model_options" or value is None:
            continue
        # the annotation names the type even where the default is None ("int | None", "list[str] | None")
        expected = types[key].split("|")[0].strip()
        if expected == "float" and isinstance(value, int) and not isinstance(value, bool):
            data[key] = float(value)
        elif expected == "list[str]":
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise DigitkitError(f"{source}: {key} must be a list of strings, not {value!r}")
        elif expected in _TYPES and (not isinstance(value, _TYPES[expected]) or (expected == "int" and isinstance(value, bool))):
            raise DigitkitError(f"{source}: {key} must be {expected}, not {type(value).__name__} ({value!r})")
    return dict(data)


_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def config_from_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The training options a checkpoint was made with, so `--config-from` repeats its run."""
    from digitkit import checkpoint as ckpt_io

    ckpt = ckpt_io.load(path)
    if not ckpt.train_config:
        raise DigitkitError(f"{path}: holds no training config (it was not written by digitkit train)")
    from digitkit.config import STORED_BEFORE

    stored = {**STORED_BEFORE, **ckpt.train_config}
    return check_options({k: v for k, v in stored.items() if k in _field_types()}, str(path))


def to_toml(cfg: TrainConfig, header: str = "") -> str:
    """A config as TOML that `--config` reads back to the same `TrainConfig` (unset values are left out)."""
    import tomli_w

    values = {k: v for k, v in cfg.to_dict().items() if v is not None and k not in _RUN_ONLY}
    options = values.pop("model_options", {}) or {}
    body = tomli_w.dumps(values)
    if options:
        body += "\n" + tomli_w.dumps({"model_options": options})
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    return ("\n".join(lines) + "\n" if lines else "") + body
