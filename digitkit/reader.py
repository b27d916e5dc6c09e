"""Pictures -> what is written on them: one digit, a whole number, or "not recognised".

For a digit model (MNIST-style preprocessing) a picture is read as a page (`data.ink`): the marks on it, left to
right, each a character. One mark is a single digit; several are a number. A mark wider than a digit usually is,
and not read with confidence (touching digits, "71" in one stroke), is also read in pieces between candidate cuts
(the valleys of its ink's projection), and neighbouring marks are also read together; the reading whose
confidences multiply to the most wins (recognition-driven segmentation), each piece costing a factor so a confident
0 stays whole rather than becoming two confident 1s. A character whose probability (temperature-calibrated where
the checkpoint holds a temperature) is below the minimum confidence is not recognised, and neither is the picture
then; in a number that reads with confidence as a whole, a character needs half of it. A page not read with
confidence as found is also read with outline strokes filled in (`ink.filled_pages`), and a filled-in reading wins
where it reads better and every character of it is sure. A model trained with made-up non-digits (`train
--outliers`, the default for mnist) holds its own minimum, measured on its validation digits; other models reject
nothing unless asked.

Other image models (clothing, small photos) see the whole picture, fitted as their training images were.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

NOT_RECOGNISED = "?"
_WIDE = 0.7  # a mark at least this wide for its height may be several touching digits
_SURE = 0.95  # a mark read whole at this confidence is not cut
# a mark read whole as no digit (below the minimum confidence) may be touching characters even this narrow: a 3
# against a 1 is about 0.6 times as wide as tall
_DOUBTFUL_WIDE = 0.45
# ... and is tried cut also from columns at most this share of its height apart (`ink.evenly_between`), along the
# path of least ink that strays at most _REACH of its height from its column (`ink.cut_path`)
_FILL = 0.25
_REACH = 0.15
_PER_PIECE = 0.8  # the price of each character in a reading of a wide mark or of marks that may be one
# Cutting any wide shape (a W, an m) yields strokes, and a stroke reads as a confident 1: a 1 made by a cut is
# worth this factor more, so "W" is not read as 1111 while "71" written in one stroke is still read
_CUT_STROKE = 0.25
# a reading with outlines filled in replaces the page as found only with each character read at least this sure
# (measured: 0.75 let 1.2 points more of the non-digits of bench/images_wild.py through than 0.9, for no more digits)
_FILLED_SURE = 0.9
_IN_NUMBER = 0.5  # the share of the minimum confidence a character of a number read with confidence needs
_JOIN_WIDTH = 1.0  # marks side by side may be one character if together no wider than they are tall
_JOIN_GAP = 0.25  # and no further apart than this, for their height


@dataclass
class Character:
    label: str | None
    confidence: float
    box: list[int]  # x0, y0, x1, y1 in the picture's pixels
    top: list[tuple[str, float]]
    array: np.ndarray | None = field(default=None, repr=False)  # the model's input ([C, 28, 28] uint8 for digits)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "confidence": self.confidence, "box": self.box,
                "top": [{"label": label, "confidence": c} for label, c in self.top]}


@dataclass
class Prediction:
    """One picture's reading. `label` is a class name, a number's digits, or None when it was not recognised
    (`reason` says why); `confidence` is that of the least sure character; `top` the single character's most likely
    labels (a number: its reading)."""

    path: str
    label: str | None
    confidence: float
    top: list[tuple[str, float]]
    characters: list[Character] = field(default_factory=list)
    reason: str = ""

    @property
    def warning(self) -> str:
        return self.reason if self.label is None else ""

    def to_dict(self) -> dict[str, Any]:
        out = {"path": self.path, "label": self.label, "confidence": self.confidence,
               "top": [{"label": label, "confidence": c} for label, c in self.top],
               "characters": [c.to_dict() for c in self.characters]}
        if self.reason:
            out["reason"] = self.reason
        return out


Source = Any  # a path, an image file's bytes (`Encoded` or bytes), a PIL image, a numpy array or a torch tensor


@dataclass(frozen=True)
class Encoded:
    """An image file's bytes held in memory (piped to stdin, received over a network), and the name it is reported
    by."""

    data: bytes
    name: str


def source_name(source: Source, index: int) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, Encoded):
        return source.name
    return f"<{type(source).__name__} {index}>"


def to_image(source: Source, name: str):
    """What Python users hold -> a PIL image: a path or an image file's bytes (decoded with every check), a PIL
    image, a numpy array or a torch tensor ([H, W], [H, W, C] or [C, H, W]; uint8, or floats in [0, 1])."""
    from PIL import Image

    from digitkit.data.preprocess import from_pil, open_image, open_image_bytes
    from digitkit.errors import InputError

    if isinstance(source, (str, os.PathLike)):
        return open_image(source)
    if isinstance(source, (Encoded, bytes, bytearray)):
        data = source.data if isinstance(source, Encoded) else bytes(source)
        if not data:
            raise InputError(f"{name}: empty file")
        return open_image_bytes(data, name)
    if isinstance(source, Image.Image):
        return from_pil(source)
    torch = sys.modules.get("torch")  # a tensor can only come from a program that imported torch
    if torch is not None and isinstance(source, torch.Tensor):
        source = source.detach().cpu()
        if source.ndim == 3 and source.shape[0] in (1, 3, 4) and source.shape[-1] not in (1, 3, 4):
            source = source.permute(1, 2, 0)
        source = source.numpy()
    if isinstance(source, np.ndarray):
        a = source
        if a.ndim == 3 and a.shape[-1] == 1:
            a = a[..., 0]
        if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)) or min(a.shape[:2]) < 1:
            raise InputError(f"{name}: an image array must be [H, W], [H, W, 3|4] or [3|4, H, W], not {list(source.shape)}")
        if a.dtype != np.uint8:
            a = a.astype(np.float64)
            if not np.isfinite(a).all():
                raise InputError(f"{name}: the image array holds NaN or infinite values")
            a = a * 255.0 if a.max(initial=0.0) <= 1.0 else a
            a = np.clip(a, 0, 255).astype(np.uint8)
        return from_pil(Image.fromarray(np.ascontiguousarray(a)))
    raise InputError(f"{name}: not an image (a path, PIL image, numpy array or tensor was expected, not "
                     f"{type(source).__name__})")


class Reader:
    """A loaded image checkpoint that reads pictures; one per process, any number of pictures."""

    def __init__(self, ckpt: Any, device: Any = "cpu", min_confidence: float | None = None, top_k: int = 1,
                 save_input: str | os.PathLike | None = None):
        """`device`: a torch device or its name; an ONNX model runs in onnxruntime on the CPU, without torch."""
        from digitkit.export import OnnxRunner
        from digitkit.tasks.image import Normalization

        self.ckpt = ckpt
        self.onnx = ckpt.exported if isinstance(ckpt.exported, OnnxRunner) else None
        if self.onnx is None:
            import torch

            from digitkit.device import pick_device

            self.device = pick_device(device) if isinstance(device, str) else device
            self.net = ckpt.build_model(self.device).to(memory_format=torch.channels_last)
        self.norm = Normalization(tuple(ckpt.input["mean"]), tuple(ckpt.input["std"]))
        self.temperature = float(ckpt.input.get("temperature", 1.0))
        self.pages = ckpt.input.get("preprocess", "mnist") == "mnist"
        if min_confidence is None:  # measured on the validation digits at training time (tasks.image.calibrate)
            min_confidence = float(ckpt.input.get("min_confidence", 0.0))
        self.min_confidence = min_confidence
        self.top_k = min(top_k, len(ckpt.classes))
        self.save_input = Path(save_input) if save_input is not None else None
        self._saved: set[str] = set()
        if self.save_input is not None:
            from digitkit.atomic import folder_problem
            from digitkit.errors import DigitkitError

            problem = folder_problem(self.save_input)
            if problem:
                raise DigitkitError(f"--save-input {self.save_input}: {problem}")

    def probabilities(self, arrays: list[np.ndarray]) -> np.ndarray:
        """uint8 [C, H, W] inputs -> calibrated class probabilities [N, classes]."""
        if not arrays:
            return np.zeros((0, len(self.ckpt.classes)), np.float32)
        if self.onnx is not None:
            return self._onnx_probabilities(np.stack(arrays))
        import torch

        from digitkit.data.transforms import normalize
        from digitkit.tasks.image import augmented_logits

        with torch.inference_mode():
            x = normalize(torch.from_numpy(np.stack(arrays)).to(self.device), self.norm.mean, self.norm.std)
            logits = augmented_logits(self.net, x, self.ckpt.input.get("tta", []))
            return torch.softmax(logits / self.temperature, dim=1).cpu().numpy()

    def _onnx_probabilities(self, images: np.ndarray) -> np.ndarray:
        """The same as the torch path with numpy and onnxruntime: normalised, the checkpoint's test-time views
        averaged (the one-pixel shifts with reflected edges, as `transforms.shifted`), a softmax at the temperature."""
        mean = np.asarray(self.norm.mean, np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(self.norm.std, np.float32).reshape(1, -1, 1, 1)
        from digitkit.tasks.image import test_views

        x = (images.astype(np.float32) / 255.0 - mean) / std
        h, w = x.shape[-2:]
        padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")  # room for one-pixel shifts
        views = test_views(self.ckpt.input.get("tta", []))
        logits = 0.0
        for d, mirrored, weight in views:
            view = padded[..., 1 - d : 1 - d + h, 1 - d : 1 - d + w]
            logits = logits + weight * self.onnx.numpy(np.ascontiguousarray(view[..., ::-1] if mirrored else view))
        logits = logits / sum(weight for _, _, weight in views)
        z = logits / self.temperature
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def read(self, sources: Iterable[Source], batch_size: int = 256) -> Iterator[Any]:
        """Pictures -> a `Prediction` or a `Failure` each, in order, in batched forward passes."""
        from digitkit.errors import Failure, InputError

        index = 0
        for chunk in _chunks(sources, batch_size):
            plans: list[Any] = []  # per picture: a Failure, or its plans (readings of the page) to choose from
            for source in chunk:
                name = source_name(source, index)
                index += 1
                try:
                    plans.append([self._first_plan(name, to_image(source, name))])
                except InputError as exc:
                    plans.append(Failure(name, str(exc)))
            readings = [options for options in plans if not isinstance(options, Failure)]
            self._score([options[0] for options in readings])
            filled = [self._filled(options[0]) for options in readings]  # needs the first readings' scores
            for options, more in zip(readings, filled):
                options += more
            self._score([plan for more in filled for plan in more])
            for options in plans:
                yield options if isinstance(options, Failure) else self._result(self._choose(options))

    # --- one picture ---------------------------------------------------------------------------------------------

    def _first_plan(self, name: str, img) -> "_Plan":
        """A picture read as found: its page's marks for a digit model, else the whole picture."""
        from digitkit.data.preprocess import to_input

        if not self.pages:
            return _Plan(name, None, [_Mark(_Piece(to_input(img, self.ckpt.input, name=name), [0, 0, *img.size]))])
        from digitkit.data.ink import read_page

        return self._plan(name, read_page(img))

    def _filled(self, found: "_Plan") -> list["_Plan"]:
        """For a page not read with confidence as found, its readings with outlines filled in. A page read surely
        as found is left as it is: no fill needs trying."""
        from digitkit.data.ink import filled_pages

        if found.page is None or not found.marks or _least_confidence(found) >= _FILLED_SURE:
            return []
        return [self._plan(found.name, page) for page in filled_pages(found.page)]

    def _choose(self, plans: list["_Plan"]) -> "_Plan":
        """The page as found, or a reading of it with outlines filled in where that reads better and each of its
        characters is read with confidence of at least _FILLED_SURE: trying more readings of a picture gives a
        non-digit more chances to pass, so a filled-in one has a higher bar to clear."""
        found, *others = plans
        sure = [p for p in others if p.marks and _least_confidence(p) >= _FILLED_SURE]
        return max([found, *sure], key=_Plan.score)

    def _plan(self, name: str, page) -> "_Plan":
        from digitkit.data.ink import join

        plan = _Plan(name, page, [_Mark(self._piece(page, m)) for m in page.marks])
        for i in range(len(page.marks)):  # pieces of one character drawn apart (a 4 in two strokes): read together
            for j in range(i + 2, min(i + 3, len(page.marks)) + 1):
                group = page.marks[i:j]
                joined = join(group)
                tall = max(m.height for m in group)
                gaps = [b.box[0] - a.box[2] for a, b in zip(group, group[1:])]
                if joined.width <= _JOIN_WIDTH * tall and max(gaps) <= _JOIN_GAP * tall:
                    plan.joined[(i, j)] = self._piece(page, joined)
        return plan

    def _piece(self, page, mark) -> "_Piece":
        from digitkit.data.preprocess import character

        size = int(self.ckpt.input["size"])
        return _Piece(character(page, mark, size, round(size * 20 / 28)), page.box_in_original(mark.box), mark)

    def _score(self, plans: list["_Plan"]) -> None:
        """Probabilities for every mark of every plan; then, for wide marks not read with confidence and for
        narrower ones read as no digit, for each piece between two candidate cuts."""
        from digitkit.data.ink import between

        self._assign([mark.whole for plan in plans for mark in plan.marks] +
                     [piece for plan in plans for piece in plan.joined.values()])
        pieces, doubtful = [], []
        for plan in plans:
            for mark in plan.marks:
                m = mark.whole.mark
                if m is None or mark.whole.confidence >= _SURE:
                    continue
                wide = m.width >= _WIDE * m.height
                unread = mark.whole.confidence < self.min_confidence
                if not wide and not (unread and m.width >= _DOUBTFUL_WIDE * m.height):
                    continue
                bounds, first, added = _cuts(plan.page.ink, m, unread, wide)
                mark.cuts = [int(np.median(b)) if isinstance(b, np.ndarray) else b for b in bounds]
                for i in range(len(mark.cuts)):
                    for j in range(i + 1, len(mark.cuts)):
                        width = mark.cuts[j] - mark.cuts[i]
                        if (i, j) == (0, len(mark.cuts) - 1) or not 0.12 * m.height <= width <= 1.2 * m.height:
                            continue
                        part = between(m, bounds[i], bounds[j])
                        if part is not None and part.height >= 0.5 * m.height:
                            mark.parts[(i, j)] = self._piece(plan.page, part)
                pieces += mark.parts.values()
                if unread:
                    doubtful.append((mark, first, added))
        self._assign(pieces)
        # cuts tried only because a mark read as no digit (narrower marks, the added cuts) give a non-digit more
        # ways to pass as digits: a piece they make counts only if it reads with confidence _FILLED_SURE, and an
        # added cut never makes a 1 (any stroke of a letter or symbol reads as one: an H or an M read as 14)
        for mark, first, added in doubtful:
            mark.parts = {(i, j): piece for (i, j), piece in mark.parts.items()
                          if {i, j} <= first or (piece.confidence >= _FILLED_SURE
                                                 and not (_one_stroke(piece) and {i, j} & added))}

    def _assign(self, pieces: list["_Piece"]) -> None:
        probs = self.probabilities([p.array for p in pieces])
        for piece, row in zip(pieces, probs):
            piece.probs = row

    def _result(self, plan: "_Plan") -> Prediction:
        classes = self.ckpt.classes
        if not plan.marks:
            return Prediction(plan.name, None, 0.0, [], [], reason="blank: no writing found")
        chosen = plan.reading()[1]
        bar = self.min_confidence
        if len(chosen) > 1 and _mean_confidence(chosen) >= bar:
            # in a number that reads as one with confidence, a doubtful character among confident digits is far
            # more likely a digit written oddly than a letter: it needs a part of the bar only
            bar *= _IN_NUMBER
        characters = []
        for piece in chosen:
            order = np.argsort(-piece.probs, kind="stable")[: self.top_k]
            top = [(classes[i], float(piece.probs[i])) for i in order]
            label = top[0][0] if top[0][1] >= bar else None
            characters.append(Character(label, top[0][1], piece.box, top, piece.array))
            self._save(plan.name, piece.array, len(chosen), len(characters))
        confidence = min(c.confidence for c in characters)
        if any(c.label is None for c in characters):
            return Prediction(plan.name, None, confidence, characters[0].top if len(characters) == 1 else [],
                              characters, reason=f"not recognised: confidence below {bar:g}")
        if len(characters) == 1:
            return Prediction(plan.name, characters[0].label, confidence, characters[0].top, characters)
        label = "".join(c.label for c in characters)
        return Prediction(plan.name, label, confidence, [(label, confidence)], characters)

    def _save(self, name: str, array: np.ndarray, count: int, number: int) -> None:
        """--save-input: the model's input as a PNG named after the picture (NAME.png, or NAME-K.png for the K-th
        character of a number), never overwriting one written earlier in this run."""
        if self.save_input is None:
            return
        from digitkit.errors import DigitkitError

        stem = Path(name).stem if not name.startswith("<") else name.strip("<>").replace(" ", "-")
        base = f"{stem}-{number}" if count > 1 else stem
        candidate, k = base, 1
        while candidate in self._saved:
            k += 1
            candidate = f"{base}.{k}"
        self._saved.add(candidate)
        try:
            input_picture(array).save(self.save_input / f"{candidate}.png")
        except OSError as exc:  # the disk filled up, the folder went away: every later picture would fail too
            raise DigitkitError(f"--save-input {self.save_input}: cannot write ({exc.strerror or exc})") from None


def input_picture(array: np.ndarray):
    """A model input ([1 or 3, H, W] uint8) as the PIL image it shows."""
    from PIL import Image

    return Image.fromarray(array.transpose(1, 2, 0) if array.shape[0] == 3 else array[0])


@dataclass
class _Piece:
    array: np.ndarray
    box: list[int]
    mark: Any = None
    probs: Any = None

    @property
    def confidence(self) -> float:
        return float(self.probs.max())


@dataclass
class _Mark:
    """One mark of a page: read whole, and for a wide doubtful one, every piece between two candidate cuts."""

    whole: _Piece
    cuts: list[int] = field(default_factory=list)
    parts: dict[tuple[int, int], _Piece] = field(default_factory=dict)

    def reading(self) -> tuple[float, list[_Piece]]:
        """(score, pieces left to right): the pieces whose confidences multiply to the most, each costing a factor
        _PER_PIECE so a confident whole character is not cut into confident strokes (a 0 into two 1s)."""
        if not self.parts:
            return _price(self.whole), [self.whole]
        last = len(self.cuts) - 1
        best: dict[int, tuple[float, list[_Piece]]] = {0: (0.0, [])}
        for j in range(1, last + 1):
            options = []
            for i in range(j):
                piece = self.whole if (i, j) == (0, last) else self.parts.get((i, j))
                if piece is None or i not in best:
                    continue
                price = _price(piece) + (math.log(_CUT_STROKE) if piece is not self.whole and _one_stroke(piece) else 0.0)
                options.append((best[i][0] + price, best[i][1] + [piece]))
            if options:
                best[j] = max(options, key=lambda o: o[0])
        return best[last] if last in best else (_price(self.whole), [self.whole])


def _cuts(ink: np.ndarray, mark: Any, unread: bool, wide: bool) -> tuple[list[Any], set[int], set[int]]:
    """-> (where a mark may be cut, left to right: columns, or paths (`ink.cut_path`); the indices of the cuts any
    wide mark gets; those of the cuts added between them). A wide mark is cut at the valleys of its ink. A mark read
    as no digit also at columns added between them, each both straight and along the path of least ink near it:
    strokes glued side by side part best straight, a tail curling under the next character along the paper
    between them."""
    from digitkit.data.ink import cut_candidates, cut_path, evenly_between

    valleys = cut_candidates(ink, mark)
    if not unread:
        return valleys, set(range(len(valleys))), set()
    bounds: list[Any] = []
    first: set[int] = set()
    added: set[int] = set()
    for column in evenly_between(valleys, round(_FILL * mark.height)):
        if column in valleys:
            if wide:
                first.add(len(bounds))
            bounds.append(column)
            continue
        added.add(len(bounds))
        bounds.append(column)
        path = cut_path(ink, mark, column, round(_REACH * mark.height))
        if (path != column).any():
            added.add(len(bounds))
            bounds.append(path)
    return bounds, first, added


def _least_confidence(plan: "_Plan") -> float:
    """The confidence of the least sure character of a plan's best reading."""
    return min(p.confidence for p in plan.reading()[1])


def _mean_confidence(pieces: list[_Piece]) -> float:
    """The geometric mean of the pieces' confidences: how sure the reading is as a whole."""
    return math.exp(sum(math.log(max(p.confidence, 1e-9)) for p in pieces) / len(pieces))


def _one_stroke(piece: _Piece) -> bool:
    """Whether the model reads the piece as a 1, the digit any single stroke looks like."""
    return int(piece.probs.argmax()) == 1


def _price(piece: _Piece) -> float:
    return math.log(max(piece.confidence, 1e-9) * _PER_PIECE)


@dataclass
class _Plan:
    name: str
    page: Any
    marks: list[_Mark]
    joined: dict[tuple[int, int], _Piece] = field(default_factory=dict)  # marks i..j-1 read as one character

    def score(self) -> float:
        """How well the page reads, to choose between readings of one picture: the mean log confidence of its best
        reading's characters (no price per character: a closing that merges two digits into one blob must not win
        by having fewer); a blank page reads worst."""
        return math.log(_mean_confidence(self.reading()[1])) if self.marks else -math.inf

    def reading(self) -> tuple[float, list[_Piece]]:
        """(score, the page's characters): each mark as it reads best, or runs of marks joined, whichever scores
        more."""
        best: dict[int, tuple[float, list[_Piece]]] = {0: (0.0, [])}
        for j in range(1, len(self.marks) + 1):
            score, pieces = self.marks[j - 1].reading()
            options = [(best[j - 1][0] + score, best[j - 1][1] + pieces)]
            for i in range(max(0, j - 3), j - 1):
                piece = self.joined.get((i, j))
                if piece is not None:
                    options.append((best[i][0] + _price(piece), best[i][1] + [piece]))
            best[j] = max(options, key=lambda o: o[0])
        return best[len(self.marks)]


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
