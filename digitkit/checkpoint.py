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

    def build_model(self, device: Any = "cpu"):
        """Rebuild the model from its config and load the deployable weights, in eval mode."""
        from digitkit.models.registry import build_model, make_config
        from digitkit.errors import DigitkitError

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
    """Read a checkpoint, with one clear error for a missing, corrupt or foreign file."""
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
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
    if not version.isdigit() or int(version) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {version!r} is newer than this digitkit understands; upgrade digitkit")
    try:
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
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: digitkit metadata is damaged ({exc.__class__.__name__}: {exc})") from None


_IMPLEMENTATION = ("fused", "foreach", "capturable", "differentiable")


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


def restore_training(ckpt: Checkpoint, path: Any, model: Any, optimizer: Any, scheduler: Any, early: Any) -> None:
    """Load a checkpoint's last weights, optimizer, schedule and early-stopping state into a fresh run's objects."""
    try:
        model.load_state_dict({k[len("model."):]: v for k, v in ckpt.train_tensors.items() if k.startswith("model.")})
        restore_optimizer(optimizer, ckpt.train_tensors, ckpt.train_state["optimizer"])
        scheduler.load_state_dict(ckpt.train_state["scheduler"])
        early.load_state_dict(ckpt.train_state["early_stopping"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: training state does not match its model ({exc})") from None


def restore_optimizer(optimizer: Any, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
    import torch

    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    for idx, slot in meta.get("plain", {}).items():
        state.setdefault(int(idx), {}).update(slot)
    # how the update runs (fused kernels on CUDA, foreach on the CPU) belongs to this device, not the one that saved
    groups = [{**saved, **{k: mine[k] for k in _IMPLEMENTATION if k in mine}}
              for saved, mine in zip(meta["param_groups"], optimizer.param_groups)]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    # saved tensors come back contiguous; CUDA's fused update needs each one laid out like its (channels-last) parameter
    for group in optimizer.param_groups:
        for param in group["params"]:
            slot = optimizer.state.get(param, {})
            for key, value in slot.items():
                if torch.is_tensor(value) and value.shape == param.shape and value.stride() != param.stride():
                    slot[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)
