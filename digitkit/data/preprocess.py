"""A user's picture -> the model's input, the way the training data was made.

MNIST digits are white ink on black, cropped to the ink, fitted into 20x20 keeping aspect, and pasted into
28x28 so the centre of mass sits in the middle; photos and scans need the same steps to be recognised.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from digitkit.data.inputs import check_input_file
from digitkit.errors import InputError

_MAX_PIXELS = 64_000_000


def open_image(path: str | os.PathLike):
    """Open and fully decode an image, with one clear error for each way a file can be unusable."""
    return _decode(check_input_file(path, "an image"), str(path))


def open_image_bytes(data: bytes, name: str):
    """An uploaded picture's bytes, decoded with the same checks as a file's (the web page's uploads)."""
    import io

    return _decode(io.BytesIO(data), name)


def _decode(source, path: str):
    from PIL import Image, ImageOps, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = _MAX_PIXELS
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice it, then decodes gigabytes: one limit, an error
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                img.load()
                img = ImageOps.exif_transpose(img)
                return _flatten_alpha(_to_8_bits(img))
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"{path}: image is too large (over {_MAX_PIXELS:,} pixels)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: truncated or corrupt image ({exc})") from None


def from_pil(img):
    """A PIL image a Python caller holds -> the same 8-bit, alpha-flattened form a decoded file gets."""
    return _flatten_alpha(_to_8_bits(img))


def _to_8_bits(img):
    """16-bit and 32-bit grayscale scaled into 0-255 (Pillow's own conversion clips them: a mid-grey 16-bit digit
    became white, a blank image)."""
    from PIL import Image

    if not (img.mode.startswith("I") or img.mode == "F"):
        return img
    values = np.asarray(img, dtype=np.float64)
    if img.mode == "F" and values.max(initial=0.0) <= 1.0:
        values = values * 255.0  # a float image in [0, 1]
    elif values.max(initial=0.0) > 255:
        values = values / 257.0  # the 16-bit range: 65535 -> 255
    return Image.fromarray(np.clip(np.nan_to_num(values), 0, 255).astype(np.uint8), "L")


def _flatten_alpha(img):
    """Transparent pixels become white paper, so dark ink on a transparent PNG reads as ink."""
    from PIL import Image

    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(paper, rgba).convert("RGB")
    return img


def fit_box(ink: np.ndarray, size: int = 28, box: int = 20) -> np.ndarray:
    """MNIST's recipe for one character's ink (float, 0 is paper, any scale): crop to the ink, fit `box` keeping the
    aspect, paste into `size` x `size` with the centre of mass in the middle -> uint8 [size, size], ink up to 255."""
    from PIL import Image

    peak = float(ink.max(initial=0.0))
    rows, cols = np.nonzero(ink > 0.25 * peak)
    crop = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] * (255.0 / peak)
    h, w = crop.shape
    scale = box / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    patch = np.asarray(Image.fromarray(crop.astype(np.float32), "F").resize((nw, nh), Image.Resampling.LANCZOS))
    patch = np.clip(patch, 0, 255)
    mass = max(float(patch.sum()), 1e-6)
    cy = (patch.sum(1) * np.arange(nh)).sum() / mass
    cx = (patch.sum(0) * np.arange(nw)).sum() / mass
    top = int(np.clip(round((size - 1) / 2 - cy), 0, size - nh))
    left = int(np.clip(round((size - 1) / 2 - cx), 0, size - nw))
    canvas = np.zeros((size, size), dtype=np.float32)
    canvas[top : top + nh, left : left + nw] = patch
    return np.clip(canvas, 0, 255).astype(np.uint8)


def character(page, mark, size: int = 28, box: int = 20) -> np.ndarray:
    """One character found on a page (`data.ink`) -> the model's uint8 [1, size, size] input: its ink, with the soft
    rim around its strokes (below the mark's threshold: a twenty-fifth of its size), through MNIST's recipe."""
    from digitkit.data.ink import grow

    rim = max(1, round(0.04 * max(mark.height, mark.width)))
    x0, y0, x1, y1 = mark.box
    h, w = page.ink.shape
    x0, y0, x1, y1 = max(0, x0 - rim), max(0, y0 - rim), min(w, x1 + rim), min(h, y1 + rim)
    own = grow(mark.mask[y0:y1, x0:x1], rim)
    return fit_box(page.ink[y0:y1, x0:x1] * own, size, box)[None]


def mnist_style(img, size: int = 28, box: int = 20, name: str = "image") -> np.ndarray:
    """A picture of one character -> uint8 [1, size, size]: the ink found on the page (`data.ink`: paper estimated
    locally, specks and marks cut by the frame dropped), all of it taken as one character, MNIST's recipe."""
    from digitkit.data.ink import join, read_page

    page = read_page(img)
    if not page.marks:
        raise InputError(f"{name}: blank image (no ink to classify)")
    return character(page, join(page.marks), size, box)


def fit_gray(img, size: int = 28) -> np.ndarray:
    """Fashion-MNIST style: light object on black, the whole picture fitted into the square."""
    from PIL import Image, ImageOps

    from digitkit.data.ink import border_is_light

    gray = img.convert("L")
    if border_is_light(np.asarray(gray, dtype=np.float32) / 255.0):
        gray = ImageOps.invert(gray)
    fitted = ImageOps.pad(gray, (size, size), method=Image.Resampling.LANCZOS, color=0)
    return np.asarray(fitted, dtype=np.uint8)[None]


def fit_rgb(img, size: int = 32) -> np.ndarray:
    """CIFAR style: RGB, centre-cropped to a square, resized."""
    from PIL import Image, ImageOps

    rgb = ImageOps.fit(img.convert("RGB"), (size, size), method=Image.Resampling.LANCZOS)
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1).copy()


def to_input(img, input_meta: dict, name: str = "image") -> np.ndarray:
    """uint8 [C, H, W] for a checkpoint's `input` metadata."""
    kind, size = input_meta.get("preprocess", "mnist"), int(input_meta["size"])
    if kind == "mnist":
        return mnist_style(img, size=size, box=round(size * 20 / 28), name=name)
    if kind == "gray":
        return fit_gray(img, size=size)
    if kind == "rgb":
        return fit_rgb(img, size=size)
    raise InputError(f"{name}: unknown preprocessing {kind!r} in the checkpoint")
