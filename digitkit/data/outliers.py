"""Made-up non-digits for training a digit model to say "not a digit" (outlier exposure, Hendrycks et al. 2019).

A network trained on digits alone is confident on anything: a letter "A" reads as a 4 at 0.998. Shown things that are
not digits, with a loss that asks for no confident class, its top probability becomes a usable "is this a digit at
all" score. Three kinds:
- pen strokes: two to four lines, arcs and curves, often joined end to start the way letters and symbols are;
- two training digits squeezed into one character's box: what a cut in the wrong place, or "42" read as one
  character, looks like;
- letters and symbols that are no digit's twin, typeset in the one font every Pillow carries (its built-in
  Aileron), bold or light, slanted and turned a little. The checks of rejection (tests, bench/images_wild.py) write
  the same characters in other fonts, handwriting-like ones, which training never sees.
Each goes through the same 20x20-box recipe as a user's picture. Seeded: the same seed makes the same images.
"""

from __future__ import annotations

import functools
import math
import random

import numpy as np
import torch

_CANVAS = 96
_GLYPH_CANVAS = 128


# letters no hand makes look like a digit (no O, I, l, S, Z, B, G, g, q, b, T, J), and symbols
GLYPHS = "ACEFHKMNPRUVWXYacefhkmnprtuvwxy?!@#%&*+=$<>~"


def not_digits(digits: torch.Tensor, count: int, seed: int = 0) -> torch.Tensor:
    """uint8 [count, 1, 28, 28] non-digit images: 45 % pen strokes, 30 % pairs of the given training digits, 25 %
    typeset letters and symbols."""
    rng = random.Random(seed)
    out = np.zeros((count, 1, 28, 28), dtype=np.uint8)
    pool = digits[:, 0].numpy()
    for i in range(count):
        roll = rng.random()
        out[i, 0] = strokes(rng) if roll < 0.45 else pair(pool, rng) if roll < 0.75 else glyph(rng)
    return torch.from_numpy(out)


@functools.lru_cache(maxsize=1)
def _font():
    from PIL import ImageFont

    return ImageFont.load_default(size=56)


def glyph(rng: random.Random, chars: str = GLYPHS) -> np.ndarray:
    """A character of `chars` in Pillow's built-in font as a hand might write it: bold or light, then warped
    (`handwritten`)."""
    from PIL import Image, ImageDraw

    from digitkit.data.preprocess import fit_box

    img = Image.new("L", (_GLYPH_CANVAS, _GLYPH_CANVAS), 0)
    ImageDraw.Draw(img).text((_GLYPH_CANVAS // 2, _GLYPH_CANVAS // 2), rng.choice(chars), fill=255, font=_font(), anchor="mm",
                             stroke_width=rng.choice([0, 0, 1, 2, 3]), stroke_fill=255)
    return fit_box(handwritten(np.asarray(img, dtype=np.float32), rng))


def handwritten(ink: np.ndarray, rng: random.Random) -> np.ndarray:
    """Typeset ink warped the way hands differ from print: a random affine map (aspect 0.7-1.3, slant up to 0.3,
    turn up to 12 degrees) and a smooth elastic displacement (a coarse random field, bicubically upsampled;
    Simard et al., 2003)."""
    import torch.nn.functional as F

    h, w = ink.shape
    g = torch.Generator().manual_seed(rng.randrange(2**31))
    angle = math.radians(rng.uniform(-12, 12))
    aspect, shear = rng.uniform(0.7, 1.3), rng.uniform(-0.3, 0.3)
    cos, sin = math.cos(angle), math.sin(angle)
    theta = torch.tensor([[cos * aspect, -sin + shear, 0.0], [sin * aspect, cos, 0.0]], dtype=torch.float32)[None]
    grid = F.affine_grid(theta, [1, 1, h, w], align_corners=False)
    field = (torch.rand(1, 2, 5, 5, generator=g) * 2 - 1) * rng.uniform(0.02, 0.06)
    grid = grid + F.interpolate(field, size=(h, w), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    out = F.grid_sample(torch.from_numpy(ink)[None, None], grid, mode="bilinear", align_corners=False)
    return out[0, 0].numpy()


def strokes(rng: random.Random) -> np.ndarray:
    """Two to four pen strokes (lines, arcs, curves), most starting where an earlier one passed."""
    from PIL import Image, ImageDraw

    from digitkit.data.preprocess import fit_box

    while True:
        img = Image.new("L", (_CANVAS, _CANVAS), 0)
        draw = ImageDraw.Draw(img)
        width = rng.randint(5, 10)
        points: list[tuple[float, float]] = []
        for _ in range(rng.randint(2, 4)):
            start = rng.choice(points) if points and rng.random() < 0.7 else _point(rng)
            path = _stroke(rng, start)
            draw.line(path, fill=255, width=width, joint="curve")
            points += path[:: max(1, len(path) // 4)] + [path[-1]]
        ink = np.asarray(img, dtype=np.float32)
        if not _line_like(ink):  # a lone bar, stroke on stroke, is what a 1 looks like
            return fit_box(ink)


def _line_like(ink: np.ndarray) -> bool:
    ys, xs = np.nonzero(ink > 127)
    if len(xs) < 3:
        return True
    spread = np.linalg.eigvalsh(np.cov(np.stack([xs, ys]).astype(np.float64)))
    return spread[0] < 0.06 * spread[1]


def _point(rng: random.Random) -> tuple[float, float]:
    return rng.uniform(15, _CANVAS - 15), rng.uniform(15, _CANVAS - 15)


def _stroke(rng: random.Random, start: tuple[float, float]) -> list[tuple[float, float]]:
    kind = rng.random()
    if kind < 0.45:  # a straight line
        return [start, _point(rng)]
    if kind < 0.75:  # an arc of an ellipse through `start`, up to three quarters round
        rx, ry = rng.uniform(10, 35), rng.uniform(10, 35)
        a0 = rng.uniform(0, 2 * math.pi)
        sweep = rng.choice([-1, 1]) * rng.uniform(math.pi / 3, 1.5 * math.pi)
        cx, cy = start[0] - rx * math.cos(a0), start[1] - ry * math.sin(a0)
        return [(cx + rx * math.cos(a0 + sweep * t), cy + ry * math.sin(a0 + sweep * t)) for t in np.linspace(0, 1, 20)]
    control, end = _point(rng), _point(rng)  # a quadratic Bezier curve
    return [((1 - t) ** 2 * start[0] + 2 * (1 - t) * t * control[0] + t * t * end[0],
             (1 - t) ** 2 * start[1] + 2 * (1 - t) * t * control[1] + t * t * end[1]) for t in np.linspace(0, 1, 20)]


def pair(pool: np.ndarray, rng: random.Random) -> np.ndarray:
    """Two training digits side by side (touching, overlapping a little, or a small gap apart) in one box."""
    from digitkit.data.preprocess import fit_box

    a, b = (_ink_crop(pool[rng.randrange(len(pool))]) for _ in range(2))
    h = max(a.shape[0], b.shape[0])
    gap = int(round(rng.uniform(-0.15, 0.3) * h))
    width = a.shape[1] + b.shape[1] + gap
    canvas = np.zeros((h, max(width, a.shape[1], b.shape[1])), dtype=np.float32)
    canvas[h - a.shape[0] :, : a.shape[1]] = a
    left = max(0, a.shape[1] + gap)
    region = canvas[h - b.shape[0] :, left : left + b.shape[1]]
    region[:] = np.maximum(region, b[:, : region.shape[1]])
    return fit_box(canvas)


def _ink_crop(image: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(image > 32)
    return image[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].astype(np.float32)

