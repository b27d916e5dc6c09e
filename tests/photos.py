"""Photo-like pictures of writing on paper, made with PIL: what a phone camera gives a user, built so its truth is
known. Used by the tests and by bench/images_wild.py; nothing here is trained on (the models learn from MNIST).

A picture is text in a handwriting-like font, on paper of some tint, under light that falls off across the page, maybe a
soft shadow, in pen-coloured ink, slightly rotated, blurred, noisy and JPEG-compressed, each by a seeded amount.
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

# Debian packages: fonts-dkg-handwriting fonts-breip fonts-bwht fonts-femkeklaver fonts-humor-sans fonts-comic-neue
# fonts-sjfonts fonts-klee fonts-rufscript (scripts/test installs them); DejaVu stands for print.
FONT_FILES = [
    "/usr/share/fonts/truetype/fifthhorseman/dkg.ttf",
    "/usr/share/fonts/truetype/breip/Breip.ttf",
    "/usr/share/fonts/opentype/bwht/BecauseWeLearn-Regular.otf",
    "/usr/share/fonts/opentype/bwht/BecauseWeCreate-Regular.otf",
    "/usr/share/fonts/opentype/bwht/BecauseWeMentor-Regular.otf",
    "/usr/share/fonts/truetype/femkeklaver/femkeklaver.ttf",
    "/usr/share/fonts/truetype/humor-sans/Humor-Sans.ttf",
    "/usr/share/fonts/opentype/comic-neue/ComicNeue-Regular.otf",
    "/usr/share/fonts/truetype/sjfonts/SteveHand.ttf",
    "/usr/share/fonts/truetype/klee/KleeOne-SemiBold.ttf",
    "/usr/share/fonts/truetype/rufscript/Rufscript010.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
]
FONT_PACKAGES = ("fonts-dkg-handwriting fonts-breip fonts-bwht fonts-femkeklaver fonts-humor-sans fonts-comic-neue "
                 "fonts-sjfonts fonts-klee fonts-rufscript fonts-dejavu-core")

# Not digits, and not shaped like one in any hand: letters that are no digit's twin (no O, I, l, S, Z, B, g, q, b,
# G, T, J, A is kept: the issue's own example), symbols, and the things bench/images_wild.py draws itself.
LETTERS = "ACEFHKMNPRUVWXYacefhkmnprtuvwxy"
SYMBOLS = ["?", "!", "@", "#", "%", "&", "*", "+", "=", "$", ":)", "€", "<", ">", "~"]

INKS = [(20, 20, 25), (25, 40, 140), (150, 25, 30), (85, 85, 90), (20, 80, 40)]
PAPERS = [(245, 245, 242), (250, 243, 220), (230, 238, 245), (240, 240, 225), (255, 255, 255)]


def fonts() -> list[str]:
    return [f for f in FONT_FILES if Path(f).is_file()]


@dataclass
class Look:
    """How one picture is taken; `clean` is ink on white, nothing else."""

    font: str
    ink: tuple[int, int, int] = (0, 0, 0)
    paper: tuple[int, int, int] = (255, 255, 255)
    light: float = 1.0  # brightness at the dark end of the page (1: even light)
    light_angle: float = 0.0
    shadow: float = 1.0  # brightness inside a soft-edged shadow (1: none)
    rotate: float = 0.0
    blur: float = 0.0
    noise: float = 0.0
    jpeg: int | None = None
    size: int = 96  # font size in pixels
    stroke: int = 0
    tracking: float = 0.0  # added space between characters, as a share of the font size: below 0 they touch


def clean(font: str, size: int = 96) -> Look:
    return Look(font=font, size=size)


def photo(rng: random.Random, font: str) -> Look:
    """A seeded phone-photo look: the ranges the issue asks for (uneven light down to 60 %, shadow, tinted paper,
    coloured ink, noise, blur, JPEG 40-90, up to 8 degrees of rotation)."""
    return Look(
        font=font,
        ink=rng.choice(INKS),
        paper=rng.choice(PAPERS),
        light=rng.uniform(0.55, 0.9),
        light_angle=rng.uniform(0, 2 * math.pi),
        shadow=rng.choice([1.0, rng.uniform(0.55, 0.8)]),
        rotate=rng.uniform(-8, 8),
        blur=rng.uniform(0, 1.5),
        noise=rng.uniform(2, 10),
        jpeg=rng.randint(40, 90),
        size=rng.randint(56, 120),
        stroke=rng.choice([0, 0, 1]),
    )


def render(text: str, look: Look, seed: int = 0) -> Image.Image:
    """`text` written on a page as `look` says -> an RGB picture (the page is about twice the text's extent)."""
    rng = np.random.default_rng(seed)
    font = ImageFont.truetype(look.font, look.size)
    if look.tracking:  # each character where the font puts it, moved by the tracking: (x offset, character)
        at = [(round(font.getlength(text[:k]) + k * look.tracking * look.size), ch) for k, ch in enumerate(text)]
        boxes = [(x, font.getbbox(ch, stroke_width=look.stroke)) for x, ch in at]
        left, right = min(x + b[0] for x, b in boxes), max(x + b[2] for x, b in boxes)
        top, bottom = min(b[1] for _, b in boxes), max(b[3] for _, b in boxes)
    else:  # the whole text at once: the font's own spacing and kerning
        at = [(0, text)]
        left, top, right, bottom = font.getbbox(text, stroke_width=look.stroke)
    w, h = max(right - left, 1), max(bottom - top, 1)
    pad = max(w, h) // 2 + 20
    width, height = w + 2 * pad, h + 2 * pad
    ink_mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(ink_mask)
    for x, ch in at:
        draw.text((pad - left + x, pad - top), ch, fill=255, font=font, stroke_width=look.stroke, stroke_fill=255)
    if look.rotate:
        ink_mask = ink_mask.rotate(look.rotate, resample=Image.Resampling.BICUBIC)
    alpha = np.asarray(ink_mask, dtype=np.float32)[..., None] / 255.0
    page = np.asarray(look.paper, dtype=np.float32) * (1 - alpha) + np.asarray(look.ink, dtype=np.float32) * alpha
    page *= _lighting(width, height, look, rng)[..., None]
    if look.blur:
        page = np.asarray(Image.fromarray(_u8(page)).filter(ImageFilter.GaussianBlur(look.blur)), dtype=np.float32)
    if look.noise:
        page = page + rng.normal(0, look.noise, page.shape)
    img = Image.fromarray(_u8(page))
    if look.jpeg is not None:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=look.jpeg)
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return img


def _lighting(width: int, height: int, look: Look, rng: np.random.Generator) -> np.ndarray:
    """Light falling off linearly across the page in one direction, times a soft shadow over part of it."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    along = xs / width * math.cos(look.light_angle) + ys / height * math.sin(look.light_angle)
    along = (along - along.min()) / max(float(np.ptp(along)), 1e-6)
    light = 1.0 - (1.0 - look.light) * along
    if look.shadow < 1.0:  # a hand's or phone's shadow: a half-plane through a random point, edge blurred
        cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
        angle = rng.uniform(0, 2 * math.pi)
        side = (xs - cx) * math.cos(angle) + (ys - cy) * math.sin(angle)
        soft = max(width, height) * 0.05
        inside = 1.0 / (1.0 + np.exp(-side / soft))
        light = light * (1.0 - (1.0 - look.shadow) * inside)
    return light


def _u8(a: np.ndarray) -> np.ndarray:
    return np.clip(a, 0, 255).astype(np.uint8)


def scribble(rng: random.Random, size: int = 160) -> Image.Image:
    """A random pen scribble (a few joined Bezier strokes) on white: not a digit, made without a font."""
    img = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(img)
    points = [(rng.uniform(0.2, 0.8) * size, rng.uniform(0.2, 0.8) * size) for _ in range(3 * rng.randint(3, 6) + 1)]
    path = []
    for i in range(0, len(points) - 3, 3):
        p0, p1, p2, p3 = points[i : i + 4]
        for t in np.linspace(0, 1, 24):
            u = 1 - t
            path.append((u**3 * p0[0] + 3 * u * u * t * p1[0] + 3 * u * t * t * p2[0] + t**3 * p3[0],
                         u**3 * p0[1] + 3 * u * u * t * p1[1] + 3 * u * t * t * p2[1] + t**3 * p3[1]))
    draw.line(path, fill=0, width=rng.randint(3, 7), joint="curve")
    return img.convert("RGB")


def blank(rng: random.Random, size: int = 160) -> Image.Image:
    """Paper with nothing written on it, photographed: tint, uneven light, noise, JPEG."""
    look = photo(rng, FONT_FILES[-1])
    return render(" ", look, seed=rng.randint(0, 2**31)).resize((size, size))
