"""Ways of writing digits that MNIST's writers (American Census employees and high-school students) hardly used,
drawn onto copies of training digits so a model trained on MNIST reads them too:

- a zero with a slash through it (engineers, programmers, Scandinavia);
- a seven with a bar across its stem (most of continental Europe);
- outline lettering, every stroke drawn as its two edges (signs, house numbers, posters, stencils).

A copy keeps its digit's label. Everything is seeded: the same seed draws the same copies.
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F

SLASHED_ZEROS = 0.2  # the share of the zeros copied with a slash
BARRED_SEVENS = 0.2  # the share of the sevens copied with a bar
OUTLINED = 0.04  # the share of all digits copied in outline


def styled(x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 training digits [N, 1, 28, 28] and their labels -> the extra copies (images, labels) to train on too."""
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    zeros = _some(y == 0, SLASHED_ZEROS, g)
    sevens = _some(y == 7, BARRED_SEVENS, g)
    outlined = _some(torch.ones_like(y, dtype=torch.bool), OUTLINED, g)
    ink = x.float() / 255.0
    images = [
        torch.stack([torch.maximum(ink[i], slash(ink[i, 0], rng)) for i in zeros.tolist()]) if len(zeros) else None,
        torch.stack([torch.maximum(ink[i], bar(ink[i, 0], rng)) for i in sevens.tolist()]) if len(sevens) else None,
        outline(ink[outlined], rng) if len(outlined) else None,
    ]
    kept = [(im, y[idx]) for im, idx in zip(images, (zeros, sevens, outlined)) if im is not None]
    if not kept:
        return x[:0], y[:0]
    out = torch.cat([im for im, _ in kept])
    return (out * 255).round().clamp(0, 255).to(torch.uint8), torch.cat([labels for _, labels in kept])


def _some(which: torch.Tensor, share: float, g: torch.Generator) -> torch.Tensor:
    """Indices of a random `share` of the True entries of a mask."""
    idx = torch.nonzero(which).flatten()
    count = int(round(len(idx) * share))
    return idx[torch.randperm(len(idx), generator=g)[:count]]


def slash(digit: torch.Tensor, rng: random.Random) -> torch.Tensor:
    """[1, 28, 28] ink of a slash through a zero [28, 28]: from below left to above right through the middle of its
    ink, a little longer than the zero is tall, as a pen draws it."""
    top, bottom, left, right = _extent(digit)
    cy, cx = (top + bottom) / 2, (left + right) / 2
    angle = math.radians(rng.uniform(50, 80))  # from the horizontal
    half = (bottom - top) / 2 * rng.uniform(0.9, 1.2) / math.sin(angle)
    dx, dy = half * math.cos(angle), half * math.sin(angle)
    return segment((cx - dx, cy + dy), (cx + dx, cy - dy), rng.uniform(0.8, 1.5))[None]


def bar(digit: torch.Tensor, rng: random.Random) -> torch.Tensor:
    """[1, 28, 28] ink of a bar across a seven's stem [28, 28], about half-way down, a little tilted."""
    top, bottom, _, _ = _extent(digit)
    row = int(round(top + (bottom - top) * rng.uniform(0.45, 0.6)))
    cols = torch.nonzero(digit[row] > 0.5).flatten()
    if len(cols) == 0:
        return torch.zeros(1, 28, 28)
    middle = float(cols.float().mean())
    half = (bottom - top) * rng.uniform(0.25, 0.35)
    tilt = rng.uniform(-1.5, 1.5)
    return segment((middle - half, row + tilt), (middle + half, row - tilt), rng.uniform(0.8, 1.4))[None]


def outline(ink: torch.Tensor, rng: random.Random) -> torch.Tensor:
    """Digits [B, 1, 28, 28] in [0, 1] drawn in outline: the ink a dilation adds around each stroke, the stroke
    itself left as the paper inside."""
    width = rng.choice((3, 5))
    grown = F.max_pool2d(ink, width, stride=1, padding=width // 2)
    return (grown - ink).clamp(0, 1)


def segment(a: tuple[float, float], b: tuple[float, float], half_width: float, size: int = 28) -> torch.Tensor:
    """[size, size] ink of a straight pen line from a to b ((x, y) in pixels), antialiased."""
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    ax, ay = a
    vx, vy = b[0] - ax, b[1] - ay
    t = (((xs - ax) * vx + (ys - ay) * vy) / max(vx * vx + vy * vy, 1e-6)).clamp(0, 1)
    distance = torch.hypot(xs - (ax + t * vx), ys - (ay + t * vy))
    return (half_width + 0.5 - distance).clamp(0, 1)


def _extent(digit: torch.Tensor) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of a digit's ink, inclusive."""
    rows = torch.nonzero(digit.amax(1) > 0.3).flatten()
    cols = torch.nonzero(digit.amax(0) > 0.3).flatten()
    if len(rows) == 0:
        return 4, 23, 4, 23
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
