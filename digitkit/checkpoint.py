"""Save and load digitkit checkpoints: one `.safetensors` file, weights plus JSON metadata, no pickle.

Layout of the file:
- `model.*`        the weights to deploy (the best epoch's, when early stopping restores them)
- `train.model.*`  the last completed epoch's weights, and `train.optim.<i>.<key>` the optimizer's tensors;
                   both only while training state is kept, so `--resume` continues exactly (this module is the
                   one that knows these names: `training_tensors` and `restore_training`)
- metadata         string -> JSON string: model name and config, dataset, classes, input normalization,
                   train config, history, metrics, versions, and the loop's state for `--resume`
"""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from digitkit.atomic import atomic_path
from digitkit.errors import CheckpointError

FORMAT = "digitkit-checkpoint"
FORMAT_VERSION = 1
_JSON_KEYS = ("model_config", "classes", "input", "train_config", "history", "metrics", "versions", "train_state")


@dataclass
class Checkpoint:
    model_name: str
    model_config: dict[str, Any]
    dataset: str
    classes: list[str]
    input: dict[str, Any]  # channels, size, mean, std, preprocess
    weights: dict[str, Any]
    train_config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    train_state: dict[str, Any] | None = None  # epoch, early stopping, scheduler, optimizer groups, status
    train_tensors: dict[str, Any] = field(default_factory=dict)  # last weights and optimizer tensors
    exported: Any = None  # a file `digitkit export` wrote: the model as a callable (ONNX runs on the CPU)

    def build_model(self, device: Any = "cpu"):
        """Rebuild the model from its config and load the deployable weights, in eval mode; an exported file's
        model is the exported one."""
        from digitkit.models.registry import build_model, make_config
        from digitkit.errors import DigitkitError

        if self.exported is not None:
            from digitkit.export import as_module

            return as_module(self.exported, device)

        try:
            config = make_config(self.model_name, dict(self.model_config))
            model = build_model(self.model_name, config)
        except (DigitkitError, TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint describes a model that cannot be built: {exc}") from None
        import torch

        if not all(torch.isfinite(w).all() for w in self.weights.values() if w.is_floating_point()):
            raise CheckpointError("checkpoint holds NaN or infinite weights: it cannot give meaningful results")
        try:
            model.load_state_dict(self.weights, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            detail = first[1].strip() if len(first) > 1 else first[0]
            raise CheckpointError(f"weights do not match the {self.model_name} architecture in the metadata: {detail}") from None
        return model.to(device).eval()

    def without_training_state(self) -> "Checkpoint":
        import dataclasses

        return dataclasses.replace(self, train_state=None, train_tensors={})


def versions() -> dict[str, str]:
    import torch

    from digitkit import __version__

    return {"digitkit": __version__, "torch": torch.__version__, "python": platform.python_version()}


def save(path: str | os.PathLike, ckpt: Checkpoint) -> Path:
    """Write atomically: a temp file in the same folder, then rename, so a crash never leaves half a file."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {f"model.{k}": v for k, v in ckpt.weights.items()}
    tensors.update({f"train.{k}": v for k, v in ckpt.train_tensors.items()})
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    meta = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "model": ckpt.model_name,
        "dataset": ckpt.dataset,
        "created": ckpt.created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    for key in _JSON_KEYS:
        value = getattr(ckpt, key)
        if value is not None:
            meta[key] = json.dumps(value)
    try:
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None
    except SafetensorError as exc:  # its writer reports a full disk as its own error, not an OSError
        raise CheckpointError(f"cannot write checkpoint {path}: {exc}") from None
    return path


def load(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint, or a model file `digitkit export` wrote (.onnx, .pt), with one clear error for a missing,
    corrupt or foreign file."""
    from safetensors import safe_open

    from digitkit.export import format_of

    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if format_of(path):
        return _load_exported(path, format_of(path))
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise CheckpointError(f"{path}: not a digitkit checkpoint (a .safetensors file without digitkit metadata)")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except CheckpointError:
        raise
    except Exception as exc:  # safetensors raises its own error types for corrupt headers and short files
        raise CheckpointError(f"{path}: not a readable .safetensors file (corrupt or truncated?): {exc}") from None
    version = meta.get("format_version", "")
    if not version.isdigit() or len(version) > 6 or int(version) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {version!r} is newer than this digitkit understands; upgrade digitkit")

    def build() -> Checkpoint:
        fields = {k: json.loads(meta[k]) for k in _JSON_KEYS if k in meta}
        return Checkpoint(
            model_name=meta["model"],
            dataset=meta["dataset"],
            created=meta.get("created", ""),
            weights={k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")},
            train_tensors={k[len("train."):]: v for k, v in tensors.items() if k.startswith("train.")},
            model_config=fields["model_config"],
            classes=fields["classes"],
            input=fields["input"],
            train_config=fields.get("train_config", {}),
            history=fields.get("history", []),
            metrics=fields.get("metrics", {}),
            versions=fields.get("versions", {}),
            train_state=fields.get("train_state"),
        )

    return _validated(path, build)


def _validated(path: Path, build: Any) -> Checkpoint:
    """`build()`'s checkpoint once its metadata has passed `_metadata_problem`; one line for anything damaged."""
    try:
        ckpt = build()
        problem = _metadata_problem(ckpt)
    except (KeyError, ValueError, TypeError, RecursionError) as exc:
        raise CheckpointError(f"{path}: digitkit metadata is damaged ({exc.__class__.__name__}: {exc})") from None
    if problem:
        raise CheckpointError(f"{path}: digitkit metadata is damaged ({problem})")
    return ckpt


def _load_exported(path: Path, fmt: str) -> Checkpoint:
    from digitkit.export import EXPORT_FORMAT, load_exported

    model, meta = load_exported(path, fmt)
    if meta.get("format") != EXPORT_FORMAT:
        raise CheckpointError(f"{path}: not a model digitkit exported (no digitkit metadata in the file)")
    return _validated(path, lambda: Checkpoint(
        model_name=meta["model_name"], dataset=meta["dataset"], created=meta.get("created", ""), weights={},
        model_config=json.loads(meta["model_config"]), classes=json.loads(meta["classes"]),
        input=json.loads(meta["input"]), metrics=json.loads(meta.get("metrics", "{}")),
        versions=json.loads(meta.get("versions", "{}")), exported=model,
    ))


_MODEL_NUMBER_LIMIT = 100_000  # no size in a model config of ours comes near it; 2e8 would allocate gigabytes


def _metadata_problem(ckpt: Checkpoint) -> str:
    """What is wrong with a checkpoint's metadata before anything is built from it ('' when nothing): the kinds and
    ranges every reader of it relies on."""
    classes, info = ckpt.classes, ckpt.input
    if not isinstance(classes, list) or not 2 <= len(classes) <= 10_000 or not all(isinstance(c, str) for c in classes):
        return "classes must be a list of 2 to 10,000 names"
    if not isinstance(info, dict) or not isinstance(ckpt.model_config, dict):
        return "input and model_config must be objects"
    for key, value in ckpt.model_config.items():
        numbers = value if isinstance(value, list) else [value]
        for v in numbers:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if not math.isfinite(v) or abs(v) > _MODEL_NUMBER_LIMIT:
                return f"model_config {key}={value!r} is out of range"
    kind = info.get("kind", "image")
    if kind == "image":
        channels, size = info.get("channels"), info.get("size")
        if channels not in (1, 3) or not isinstance(size, int) or not 8 <= size <= 512:
            return "input channels must be 1 or 3 and size 8-512"
        for key in ("mean", "std"):
            values = info.get(key)
            if not isinstance(values, list) or len(values) != channels or not all(_finite(v) for v in values):
                return f"input {key} must be {channels} finite numbers"
        if not all(v > 0 for v in info["std"]):
            return "input std must be positive"
        if info.get("preprocess", "mnist") not in ("mnist", "gray", "rgb"):
            return f"input preprocess {info.get('preprocess')!r} is unknown"
        if "temperature" in info and not (_finite(info["temperature"]) and 0.01 <= info["temperature"] <= 100):
            return "input temperature must be between 0.01 and 100"
        if "min_confidence" in info and not (_finite(info["min_confidence"]) and 0 <= info["min_confidence"] <= 1):
            return "input min_confidence must be between 0 and 1"
    elif kind == "speech":
        rate, mels = info.get("sample_rate"), info.get("n_mels")
        if not isinstance(rate, int) or not 1000 <= rate <= 192_000 or not isinstance(mels, int) or not 8 <= mels <= 256:
            return "input sample_rate must be 1,000-192,000 Hz and n_mels 8-256"
        if "level_db" in info and info["level_db"] is not None and not (_finite(info["level_db"]) and -80 <= info["level_db"] <= 0):
            return "input level_db must be between -80 and 0 dB"
        from digitkit.config import FEATURE_NORMS

        if "feature_norm" in info and info["feature_norm"] not in FEATURE_NORMS:
            return f"input feature_norm must be one of {', '.join(FEATURE_NORMS)}"
    return ""


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_IMPLEMENTATION = ("fused", "foreach", "capturable", "differentiable")
_GROUP_NUMBERS = ("lr", "initial_lr", "max_lr", "min_lr", "eps", "weight_decay", "momentum", "dampening",
                  "base_momentum", "max_momentum")


def training_tensors(model: Any, optimizer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors, JSON) of what `--resume` needs beyond the loop's counters: the last weights and the optimizer."""
    import torch

    sd = optimizer.state_dict()
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    plain: dict[str, dict[str, Any]] = {}
    for idx, slot in sd["state"].items():
        for key, value in slot.items():
            if torch.is_tensor(value):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                plain.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "plain": plain}


def train_state_problem(state: Any) -> str:
    """What is wrong with a checkpoint's training state before a resume relies on it ('' when nothing): the
    fields and kinds `--resume` reads. (Values inside the scheduler and optimizer states are checked by loading
    them, in `restore_training`.)"""
    if not isinstance(state, dict):
        return "it is not an object"
    epoch = state.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= 1_000_000:
        return f"epoch {epoch!r} is not a count of epochs"
    if not isinstance(state.get("status", ""), str) or not isinstance(state.get("stop_reason", ""), str):
        return "status and stop_reason must be text"
    for key in ("scheduler", "early_stopping", "optimizer"):
        if not isinstance(state.get(key), dict):
            return f"{key} must be an object"
    early = state["early_stopping"]
    if not (early.get("best") is None or _finite(early.get("best"))) or not all(
            isinstance(early.get(k, 0), int) and not isinstance(early.get(k, 0), bool) and early.get(k, 0) >= 0
            for k in ("best_epoch", "bad_epochs")):
        return "early_stopping holds values that are not a loss and epoch counts"
    if not isinstance(state["optimizer"].get("param_groups"), list):
        return "optimizer has no parameter groups"
    return ""


def restore_training(ckpt: Checkpoint, path: Any, model: Any, optimizer: Any, scheduler: Any, early: Any) -> None:
    """Load a checkpoint's last weights, optimizer, schedule and early-stopping state into a fresh run's objects
    (a state `train_state_problem` has passed: `api.train` checks it before any work starts)."""
    try:
        model.load_state_dict({k[len("model."):]: v for k, v in ckpt.train_tensors.items() if k.startswith("model.")})
        restore_optimizer(optimizer, ckpt.train_tensors, ckpt.train_state["optimizer"])
        odd = _unlike(scheduler.state_dict(), ckpt.train_state["scheduler"])
        if odd:  # torch's schedulers take any values and fail steps later, mid-training
            raise ValueError(f"scheduler {odd}")
        scheduler.load_state_dict(ckpt.train_state["scheduler"])
        early.load_state_dict(ckpt.train_state["early_stopping"])
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
        # torch's loaders take whatever the JSON held: a float where a list was, a string where a number was
        raise CheckpointError(f"{path}: training state does not match its model ({type(exc).__name__}: {exc})") from None


def _unlike(fresh: Any, saved: Any, where: str = "") -> str:
    """Where `saved` (from JSON) differs in kind from a fresh object's state (`fresh`), or '': numbers for numbers,
    flags for flags, lists of the same length, and so on down; keys a fresh state lacks are left to the loader."""
    def kind(v: Any) -> str:
        if isinstance(v, bool) or v is None:
            return type(v).__name__
        if isinstance(v, (int, float)):
            return "number"
        return "list" if isinstance(v, (list, tuple)) else type(v).__name__

    if isinstance(fresh, dict) and isinstance(saved, dict):
        return next((odd for key in fresh if key in saved for odd in [_unlike(fresh[key], saved[key], f"{where}.{key}".lstrip("."))] if odd), "")
    if kind(fresh) == "list" and kind(saved) == "list":
        if len(fresh) != len(saved):
            return f"{where} has {len(saved)} values, not {len(fresh)}"
        return next((odd for i, (a, b) in enumerate(zip(fresh, saved)) for odd in [_unlike(a, b, f"{where}[{i}]")] if odd), "")
    if kind(fresh) != kind(saved) and kind(fresh) != "NoneType":  # a fresh None is a value not set yet
        return f"{where} is {saved!r}, where a {kind(fresh)} belongs"
    return ""


def restore_optimizer(optimizer: Any, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
    import torch

    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    for idx, slot in meta.get("plain", {}).items():
        state.setdefault(int(idx), {}).update(slot)
    if len(meta["param_groups"]) != len(optimizer.param_groups):
        raise ValueError(f"{len(meta['param_groups'])} parameter groups saved, the optimizer has {len(optimizer.param_groups)}")
    for saved in meta["param_groups"]:
        for key, value in saved.items():
            numbers = value if key == "betas" else [value] if key in _GROUP_NUMBERS else []
            if key == "betas" and not (isinstance(value, (list, tuple)) and len(value) == 2):
                raise ValueError(f"betas {value!r} are not two numbers")
            if not all(_finite(v) and v >= 0 for v in numbers):
                raise ValueError(f"optimizer {key} {value!r} is not a finite, non-negative number")
    # how the update runs (fused kernels on CUDA, foreach on the CPU) belongs to this device, not the one that saved
    groups = [{**saved, **{k: mine[k] for k in _IMPLEMENTATION if k in mine}}
              for saved, mine in zip(meta["param_groups"], optimizer.param_groups)]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    # saved tensors come back contiguous; CUDA's fused update needs each one laid out like its (channels-last) parameter
    for group in optimizer.param_groups:
        for param in group["params"]:
            slot = optimizer.state.get(param, {})
            for key, value in slot.items():
                if torch.is_tensor(value) and value.ndim and value.shape != param.shape:  # a moment of another model
                    raise ValueError(f"optimizer state {key} has shape {tuple(value.shape)}, its parameter {tuple(param.shape)}")
                if torch.is_tensor(value) and value.shape == param.shape and value.stride() != param.stride():
                    slot[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)
