"""Batch-level tensor ops: uint8 -> normalized float, and random geometry for training batches."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from digitkit.data.registry import Augment


@functools.lru_cache(maxsize=16)
def _channel_stats(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.tensor(mean, device=device).view(1, -1, 1, 1), torch.tensor(std, device=device).view(1, -1, 1, 1))


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 [B, C, H, W], or floats already in [0, 1], -> standardized float32. The per-channel constants are made
    once per device: copying a fresh list to a GPU every batch would wait for all the GPU work queued before it."""
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    m, s = _channel_stats(tuple(mean), tuple(std), x.device)
    return (x - m) / s


def augment(x: torch.Tensor, aug: Augment) -> torch.Tensor:
    """Random rotation/scale/shift (one affine warp per sample), bolder strokes, horizontal flips and cutout on a
    float batch in [0, 1]. Cutout fills its square with the batch's mean colour, which is about zero once normalized."""
    b, _, h, w = x.shape
    dev = x.device
    if aug.rotate_deg or aug.translate_px or aug.scale:
        angle = (torch.rand(b, device=dev) * 2 - 1) * math.radians(aug.rotate_deg)
        scale = 1 + (torch.rand(b, device=dev) * 2 - 1) * aug.scale
        shift = (torch.rand(b, 2, device=dev) * 2 - 1) * aug.translate_px
        if aug.integer_shift:
            shift = shift.round()
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack(
            [torch.stack([cos, -sin, shift[:, 0] * 2 / w], 1), torch.stack([sin, cos, shift[:, 1] * 2 / h], 1)], 1
        )
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode=aug.padding, align_corners=False)
    if aug.thicken:
        bold = torch.rand(b, device=dev) < aug.thicken
        x = torch.where(bold.view(-1, 1, 1, 1), F.max_pool2d(x, 3, stride=1, padding=1), x)
    if aug.hflip:
        flip = torch.rand(b, device=dev) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    if aug.cutout:
        x = cutout(x, aug.cutout)
    return x


def cutout(x: torch.Tensor, size: int) -> torch.Tensor:
    """Blank a size x size square (clipped at the edges) centred at a random pixel of each image."""
    b, _, h, w = x.shape
    dev = x.device
    top = torch.randint(0, h, (b, 1, 1), device=dev) - size // 2
    left = torch.randint(0, w, (b, 1, 1), device=dev) - size // 2
    rows = torch.arange(h, device=dev).view(1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    fill = x.mean(dim=(0, 2, 3), keepdim=True)
    return torch.where(inside.unsqueeze(1), fill, x)


def shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """The batch moved by whole pixels, its edges reflected in (test-time augmentation)."""
    pad = max(abs(dy), abs(dx))
    if pad == 0:
        return x
    h, w = x.shape[-2:]
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    return padded[..., pad - dy : pad - dy + h, pad - dx : pad - dx + w]
