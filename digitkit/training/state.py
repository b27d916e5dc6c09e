"""Optimizer state <-> (tensors, JSON) so `--resume` can live in a safetensors file without pickle."""

from __future__ import annotations

from typing import Any

import torch


_IMPLEMENTATION = ("fused", "foreach", "capturable", "differentiable")


def optimizer_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for idx, slot in sd["state"].items():
        for key, value in slot.items():
            if torch.is_tensor(value):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                plain.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "plain": plain}


def optimizer_from_tensors(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
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
