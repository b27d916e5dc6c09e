"""Image classification as a training task: in-memory uint8 tensors batched by index, normalized and augmented
as whole-batch tensor ops, channels-last for the convolution kernels.

Device rule: the task moves its tensors to the training device once, in its constructor; every helper below takes
the device from its inputs (the model's parameters, the logits), so no caller has to keep two devices in step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F

from digitkit.data.registry import Augment
from digitkit.data.transforms import augment as augment_batch
from digitkit.data.transforms import normalize, shifted
from digitkit.device import model_device
from digitkit.training.distributed import World, shard


@dataclass
class Normalization:
    mean: tuple[float, ...]
    std: tuple[float, ...]


def _to_input(x: torch.Tensor, norm: Normalization, device: torch.device, aug: Augment | None = None) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if aug is not None:
        x = augment_batch(x.float() / 255.0, aug)
    return normalize(x, norm.mean, norm.std).contiguous(memory_format=torch.channels_last)


def tta_views(hflip: bool) -> list[str]:
    """Test-time augmentation for a dataset: mirrored copies only where training mirrored the images."""
    return ["flip", "shift"] if hflip else ["shift"]


def augmented_logits(model: torch.nn.Module, x: torch.Tensor, tta: list[str] | tuple[str, ...] = ()) -> torch.Tensor:
    """Mean logits over test-time views of a normalized batch: as is, mirrored ("flip"), and moved one pixel
    up-left and down-right ("shift", half weight each). No views: the plain logits."""
    views = [(x, 1.0)]
    if "flip" in tta:
        views.append((x.flip(3), 1.0))
    if "shift" in tta:
        for d in (-1, 1):
            moved = shifted(x, d, d)
            views += [(moved, 0.5), (moved.flip(3), 0.5)] if "flip" in tta else [(moved, 1.0)]
    total = sum(w for _, w in views)
    out = None
    for view, weight in views:
        logits = model(view.contiguous(memory_format=torch.channels_last)).float() * (weight / total)
        out = logits if out is None else out + logits
    return out


@torch.inference_mode()
def logits_for(model: torch.nn.Module, x: torch.Tensor, norm: Normalization, batch_size: int = 1000,
               tta: list[str] | tuple[str, ...] = ()) -> torch.Tensor:
    """Logits for a whole uint8 tensor (on any device), in bounded batches run where the model is, averaged over
    the `tta` views; they stay on the model's device."""
    model.eval()
    device = model_device(model)
    out = [augmented_logits(model, _to_input(x[i : i + batch_size], norm, device), tta) for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0, device=device)


def loss_and_accuracy(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy, computed where the logits are (the labels follow them)."""
    if len(y) == 0:
        return float("nan"), float("nan")
    y = y.to(logits.device)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


class ImageTask:
    """The whole dataset lives on the training device (a few hundred MB at most): batches are gathered there by
    index, so a step copies nothing from the host."""

    def __init__(self, train_x, train_y, val_x, val_y, norm: Normalization, aug: Augment | None, device: torch.device):
        self.train_x, self.train_y, self.val_x, self.val_y = (t.to(device) for t in (train_x, train_y, val_x, val_y))
        self.norm, self.aug, self.device = norm, aug, device

    def steps_per_epoch(self, batch_size: int) -> int:
        return (len(self.train_x) + batch_size - 1) // batch_size

    def set_epoch(self, epoch: int, epochs: int) -> None:
        pass

    def train_batches(self, batch_size: int, order: torch.Generator | None = None, world: World = World()) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        perm = torch.randperm(len(self.train_x), generator=order).to(self.device)
        for start in range(0, len(perm), batch_size):
            idx = perm[start : start + batch_size]
            if len(idx) < world.size:  # too few left to give every rank one
                break
            idx = shard(idx, world)
            yield _to_input(self.train_x[idx], self.norm, self.device, self.aug), self.train_y[idx], len(idx)

    def loss(self, model, inputs, targets, label_smoothing):
        logits = model(inputs)
        loss = F.cross_entropy(logits, targets, label_smoothing=label_smoothing)
        return loss, (logits.detach().argmax(1) == targets).sum()

    def validate(self, model) -> tuple[float, float] | None:
        if len(self.val_y) == 0:
            return None
        return loss_and_accuracy(logits_for(model, self.val_x, self.norm), self.val_y)
