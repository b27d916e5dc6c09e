"""Find the writing on a page: a photo or scan -> an ink map in [0, 1], then the marks on it grouped into characters.

A phone photo of paper is lit unevenly, shadowed, tinted, noisy and compressed; a threshold against the border's
colour keeps the dark side of the page as ink. So the paper is estimated locally: a grey-level closing (max then
min filter) wider than any stroke removes the writing and keeps the light, shadows included, and each pixel's ink is
how much darker it is than the paper behind it, as a ratio (light falls off multiplicatively), in its darkest
colour channel (blue or red pen on white paper is dark in the other channels). The noise floor comes from the
paper's own spread. Marks are connected components of that map; pieces stacked above one another are one character
(a 5 with its flag apart, a 4 in two strokes), and a small piece beside a character joins it; specks, smudges,
underlines and marks cut by the frame are dropped. Wide marks get candidate cuts (`cut_candidates`) for the reader
to try. Where the writing may be outline lettering, `filled_pages` gives the page with the insides of its strokes
filled in at several widths, for the reader to keep whichever reads best.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WORK_SIDE = 512  # pages are read at most this many pixels on their longer side: a digit keeps far more than 20 px
_BACKGROUND_SIDE = 64  # the paper estimate is smooth: computed small, scaled up
_LEAST_INK = 0.25  # writing is at least this much darker than its paper (a soft pencil is about 0.5)
_PAPER_KERNEL = 0.2  # closing width, as a fraction of the page's longer side: wider than a stroke of a digit filling it
_OUTLINE_WIDTHS = (0.1, 0.16, 0.24)  # insides of outline strokes tried, as fractions of the writing's height
_UNSURE_BORDER = (0.25, 0.75)  # a border this grey may be paper in shadow or a dark ground: `_light_ground` looks
_THIN_WRITING = 1.1  # ... and takes the writing's side only when one mean exceeds the other by this factor
_THIN_CUT = 0.75  # a cut between touching characters crosses at most this share of a typical column's ink
_SEVERAL = 1.4  # a mark this many times wider than tall holds several characters


@dataclass
class Mark:
    """One character's ink: its box on the working page (x0, y0, x1, y1, exclusive ends) and its pixels there."""

    box: tuple[int, int, int, int]
    mask: np.ndarray  # bool, the page's shape: which pixels belong to this character

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]


@dataclass
class Page:
    ink: np.ndarray  # float32 [H, W] in [0, 1]: 1 is full-strength ink
    marks: list[Mark]  # left to right
    scale: float  # working page pixels per original pixel

    def box_in_original(self, box: tuple[int, int, int, int]) -> list[int]:
        return [int(round(v / self.scale)) for v in box]


def read_page(img) -> Page:
    """A PIL image -> its ink map and the characters on it: dark ink on light paper, or light ink on a dark ground
    (a blackboard, MNIST itself), as the picture's border says, or where that is grey, the writing's thinness."""
    from PIL import Image, ImageFilter

    rgb = img.convert("RGB")
    scale = min(1.0, WORK_SIDE / max(rgb.size))
    if scale < 1.0:
        rgb = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))), Image.Resampling.BOX)
    if min(rgb.size) >= 24:  # a little smoothing takes the sensor noise out of the darkest channel
        rgb = rgb.filter(ImageFilter.GaussianBlur(0.7))
    page = np.asarray(rgb, dtype=np.float32) / 255.0
    if not _light_ground(page.mean(axis=2)):
        page = 1.0 - page
    ink = _ink(page)
    return Page(ink=ink, marks=find_marks(ink), scale=scale)


def filled_pages(page: Page) -> list[Page]:
    """The page with the insides of outline strokes filled in, one for each width tried (where that width finds
    any): a bold digit's small counters can pass for outline lettering, and how wide an outline's inside is depends
    on the font, so the reader reads each beside the page as found and keeps the one it reads best."""
    height = max((m.height for m in page.marks), default=0)
    found = []
    for width in _OUTLINE_WIDTHS if page.marks else ():
        filled = page.ink.copy()
        if _fill_thin_gaps(filled, height, width):
            found.append(Page(ink=filled, marks=find_marks(filled), scale=page.scale))
    return found


def _fill_thin_gaps(ink: np.ndarray, height: int, width: float, least: float = 0.4, threshold: float = 0.35) -> bool:
    """Outline ("hollow") lettering and sketchy double-traced strokes: paper narrower than `width` times the
    writing's height between two lines of ink (a closing of the ink's mask) is the inside of a stroke and becomes
    ink, in place, where the insides so found are at least `least` of the writing (in outline lettering they are
    about as large as the lines around them; less is a plain digit's narrow mouths and corners, which must stay
    open). -> whether anything changed."""
    k = max(3, int(width * height) | 1)
    closed = ~_max_filter(~_max_filter(ink > threshold, k), k)
    filled = closed & (ink <= threshold)
    if not filled.any() or filled.sum() < least * (ink > threshold).sum():
        return False
    ink[filled] = 1.0
    return True


def _light_ground(gray: np.ndarray) -> bool:
    """Whether a grey page (values in [0, 1]) is dark writing on light paper, not light writing on a dark ground.
    The border says so where it is clearly light or dark. A grey one (paper half in shadow, a dim photo) does not:
    then the writing is what is thin. Around dark strokes, every pixel within a window's reach sits above the
    window's minimum, while only the strokes themselves sit below its maximum; so over the page, the mean height
    above the local minimum exceeds the mean depth below the local maximum on light paper, and falls short of it on
    a dark ground (measured: right on 600 photo-like pages, light and inverted, and 2,000 MNIST digits; on writing
    the larger is at least 1.12 times the smaller)."""
    border = _border_level(gray)
    if not _UNSURE_BORDER[0] < border < _UNSURE_BORDER[1]:
        return border > 0.5
    small = _shrunk(gray[..., None])[..., 0]
    k = max(3, int(_PAPER_KERNEL * max(small.shape)) | 1)
    above_min = float((small - -_max_filter(-small, k)).mean())
    below_max = float((_max_filter(small, k) - small).mean())
    if max(above_min, below_max) < _THIN_WRITING * min(above_min, below_max):
        return border > 0.5  # no writing to go by (blank paper: the two agree within 4 %)
    return above_min > below_max


def border_is_light(gray: np.ndarray) -> bool:
    """Whether a grey picture (values in [0, 1]) has a light border: paper with dark writing on it."""
    return _border_level(gray) > 0.5


def _border_level(gray: np.ndarray) -> float:
    """The median grey of a picture's outermost rows and columns."""
    return float(np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])))


def _ink(page: np.ndarray) -> np.ndarray:
    """Darkness relative to the local paper, in the darkest channel, with the paper's noise floor taken off and the
    writing's own strength scaled to 1."""
    paper = _paper(page)
    darkness = (1.0 - page / np.maximum(paper, 1e-3)).max(axis=2)
    darkness = np.clip(darkness, 0.0, 1.0)
    floor = float(np.median(darkness))
    spread = 1.4826 * float(np.median(np.abs(darkness - floor)))
    low = floor + max(5.0 * spread, 0.08)
    above = darkness[darkness > low]
    if above.size == 0 or float(above.max()) < _LEAST_INK:  # blank paper: its noise is not to be scaled up to ink
        return np.zeros(darkness.shape, np.float32)
    high = max(float(np.percentile(above, 98)), low + 0.1)
    return np.clip((darkness - low) / (high - low), 0.0, 1.0).astype(np.float32)


def _paper(page: np.ndarray) -> np.ndarray:
    """Per-channel paper brightness under the writing: a closing on a small copy, blurred, scaled back up."""
    h, w, _ = page.shape
    small = _shrunk(page)
    k = max(3, int(_PAPER_KERNEL * max(small.shape[:2])) | 1)
    lifted = _max_filter(small, k)  # dilation: the ink disappears
    closed = -_max_filter(-lifted, k)  # erosion: the paper's edges and shadows come back where they were
    closed = np.maximum(closed, small)  # paper is never darker than the pixel on it
    edged = closed
    for axis in (0, 1):
        edged = np.swapaxes(_edge_pad(np.swapaxes(edged, axis, -1), 1), axis, -1)
    smooth = sum(edged[dy : dy + closed.shape[0], dx : dx + closed.shape[1]] for dy in range(3) for dx in range(3)) / 9
    smooth = smooth.astype(np.float32)
    return np.maximum(_bilinear(smooth, h, w) if smooth.shape[:2] != (h, w) else smooth, page)


def _shrunk(x: np.ndarray) -> np.ndarray:
    """[H, W, C] averaged down to at most _BACKGROUND_SIDE pixels on its longer side, at least one on the shorter
    (a strip a few pixels high would otherwise shrink to nothing)."""
    h, w = x.shape[:2]
    scale = min(1.0, _BACKGROUND_SIDE / max(h, w))
    return _area(x, max(1, int(h * scale)), max(1, int(w * scale))) if scale < 1 else x


def _area(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """[H, W, C] averaged down to [out_h, out_w, C], each output pixel the mean of the input pixels it covers
    (the bins of an adaptive average pooling), as two small matrix products."""
    def weights(n: int, out: int) -> np.ndarray:
        i = np.arange(out)
        start, end = (i * n) // out, -((-(i + 1) * n) // out)
        cols = np.arange(n)
        inside = (cols[None, :] >= start[:, None]) & (cols[None, :] < end[:, None])
        return (inside / (end - start)[:, None]).astype(np.float32)

    return _along(_along(x, weights(x.shape[0], out_h), 0), weights(x.shape[1], out_w), 1)


def _bilinear(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """[h, w, C] resized to [out_h, out_w, C] by linear interpolation between pixel centres (edges held)."""
    def weights(n: int, out: int) -> np.ndarray:
        src = np.maximum((np.arange(out) + 0.5) * (n / out) - 0.5, 0.0)
        lo = np.minimum(src.astype(np.int64), n - 1)
        hi = np.minimum(lo + 1, n - 1)
        t = (src - lo).astype(np.float32)
        w = np.zeros((out, n), np.float32)
        np.add.at(w, (np.arange(out), lo), 1 - t)
        np.add.at(w, (np.arange(out), hi), t)
        return w

    return _along(_along(x, weights(x.shape[0], out_h), 0), weights(x.shape[1], out_w), 1)


def _along(x: np.ndarray, weights: np.ndarray, axis: int) -> np.ndarray:
    """`weights` [out, n] applied along `axis` (of length n) of `x`: one matrix product."""
    y = np.moveaxis(x, axis, 0)
    out = (weights @ y.reshape(y.shape[0], -1)).reshape(weights.shape[0], *y.shape[1:])
    return np.moveaxis(out, 0, axis)


def _max_filter(x: np.ndarray, k: int) -> np.ndarray:
    """A k x k maximum filter (k odd) over the first two axes, edges repeated, as two 1-d passes (a square's max is
    the max of its rows' maxima)."""
    for axis in (0, 1):
        y = np.swapaxes(x, axis, -1)
        x = np.swapaxes(_running_max(_edge_pad(y, k // 2), k), axis, -1)
    return x


def _edge_pad(y: np.ndarray, pad: int) -> np.ndarray:
    """The last axis extended by `pad` copies of its first and last values (np.pad's "edge", without its overhead,
    which dominated the filters on a digit-sized picture)."""
    return np.concatenate([np.repeat(y[..., :1], pad, axis=-1), y, np.repeat(y[..., -1:], pad, axis=-1)], axis=-1)


def _running_max(y: np.ndarray, k: int) -> np.ndarray:
    """Maxima of every k consecutive values along the last axis ([..., n] -> [..., n - k + 1]): k shifted maxima for
    a small k, else O(1) per value whatever k (van Herk / Gil-Werman: running maxima within blocks of k, forwards
    and backwards)."""
    n = y.shape[-1]
    if k <= 8:
        out = y[..., : n - k + 1]
        for i in range(1, k):
            out = np.maximum(out, y[..., i : n - k + 1 + i])
        return out
    m = -(-n // k) * k
    if m > n:
        y = np.concatenate([y, np.repeat(y[..., -1:], m - n, axis=-1)], axis=-1)
    blocks = y.reshape(*y.shape[:-1], m // k, k)
    ahead = np.maximum.accumulate(blocks, axis=-1).reshape(y.shape)
    behind = np.maximum.accumulate(blocks[..., ::-1], axis=-1)[..., ::-1].reshape(y.shape)
    return np.maximum(behind[..., : n - k + 1], ahead[..., k - 1 : n])


def grow(mask: np.ndarray, radius: int) -> np.ndarray:
    """A boolean mask dilated by `radius` pixels (a square neighbourhood)."""
    return _max_filter(mask, 2 * radius + 1)


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of a boolean image -> (labels from 1, 0 for background; count). Runs of each row are
    joined to the runs of the row above they touch, diagonals included, through a union-find: a few thousand runs on
    a page of writing."""
    h, w = mask.shape
    padded = np.zeros((h, w + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    rows_s, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)  # exclusive
    n = len(starts)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    row_first = np.searchsorted(rows_s, np.arange(h + 1))
    for r in range(1, h):
        a0, a1 = row_first[r - 1], row_first[r]
        b0, b1 = row_first[r], row_first[r + 1]
        i, j = a0, b0
        while i < a1 and j < b1:
            if starts[i] <= ends[j] and starts[j] <= ends[i]:  # the runs touch, at least at a corner
                ri, rj = find(i), find(j)
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
            if ends[i] < ends[j]:
                i += 1
            else:
                j += 1
    roots = np.array([find(i) for i in range(n)], dtype=np.int64)
    _, label_of_run = np.unique(roots, return_inverse=True)
    labels = np.zeros((h, w), dtype=np.int32)
    for k in range(n):
        labels[rows_s[k], starts[k] : ends[k]] = label_of_run[k] + 1
    return labels, int(label_of_run.max() + 1) if n else 0


def find_marks(ink: np.ndarray, threshold: float = 0.35) -> list[Mark]:
    """The characters on an ink map, left to right (see the module's docstring for the rules)."""
    labels, count = components(ink > threshold)
    if count == 0:
        return []
    index = np.arange(1, count + 1)
    ys, xs = np.nonzero(labels)
    lab = labels[ys, xs]
    x0 = np.full(count + 1, 1 << 30)
    y0 = np.full(count + 1, 1 << 30)
    x1 = np.zeros(count + 1, dtype=np.int64)
    y1 = np.zeros(count + 1, dtype=np.int64)
    np.minimum.at(x0, lab, xs)
    np.minimum.at(y0, lab, ys)
    np.maximum.at(x1, lab, xs + 1)
    np.maximum.at(y1, lab, ys + 1)
    mass = np.bincount(lab, weights=ink[ys, xs], minlength=count + 1)
    boxes = {int(i): [int(x0[i]), int(y0[i]), int(x1[i]), int(y1[i])] for i in index}
    biggest = max(index, key=lambda i: mass[i])
    size = max(boxes[biggest][2] - boxes[biggest][0], boxes[biggest][3] - boxes[biggest][1])
    # specks: noise, dust, JPEG blocks, far smaller than the strongest mark
    kept = [int(i) for i in index if max(boxes[i][2] - boxes[i][0], boxes[i][3] - boxes[i][1]) >= 0.12 * size
            and mass[i] >= 0.01 * mass[biggest]]
    h, w = ink.shape
    inside = [i for i in kept if not _touches_edge(boxes[i], w, h)]
    if inside:  # the page's edge, the table, a finger: marks cut by the frame go when whole ones are present
        kept = inside
    groups = _stack(kept, boxes)
    tallest = max(b[3] - b[1] for _, b in groups)
    big = [g for g in groups if g[1][3] - g[1][1] >= 0.35 * tallest]
    for members, box in groups:  # a 5's flag or a 7's bar drawn apart joins the character it nearly touches
        if box[3] - box[1] >= 0.35 * tallest:
            continue
        near = [g for g in big if _gap(box, g[1]) < 0.15 * tallest and box[1] < g[1][3] and box[3] > g[1][1]]
        if near:  # else: a dash, an underline or a dot beside the writing, dropped
            host = min(near, key=lambda g: _gap(box, g[1]))
            host[0].extend(members)
            host[1][:] = [min(host[1][0], box[0]), min(host[1][1], box[1]), max(host[1][2], box[2]), max(host[1][3], box[3])]
    return [Mark(box=tuple(box), mask=np.isin(labels, members)) for members, box in sorted(big, key=lambda g: g[1][0])]


def _gap(a: list[int], b: list[int]) -> float:
    """The distance between two boxes (0 when they overlap)."""
    dx = max(0, max(a[0], b[0]) - min(a[2], b[2]))
    dy = max(0, max(a[1], b[1]) - min(a[3], b[3]))
    return float(np.hypot(dx, dy))


def _touches_edge(box: list[int], w: int, h: int) -> bool:
    return box[0] == 0 or box[1] == 0 or box[2] == w or box[3] == h


def _stack(ids: list[int], boxes: dict[int, list[int]]) -> list[tuple[list[int], list[int]]]:
    """Join marks that overlap horizontally by half the narrower one's width: pieces of one character."""
    groups = [([i], list(boxes[i])) for i in ids]
    merged = True
    while merged:
        merged = False
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                ba, bb = groups[a][1], groups[b][1]
                overlap = min(ba[2], bb[2]) - max(ba[0], bb[0])
                if overlap >= 0.5 * min(ba[2] - ba[0], bb[2] - bb[0]):
                    box = [min(ba[0], bb[0]), min(ba[1], bb[1]), max(ba[2], bb[2]), max(ba[3], bb[3])]
                    groups[a] = (groups[a][0] + groups[b][0], box)
                    del groups[b]
                    merged = True
                    break
            if merged:
                break
    return groups


def join(marks: list[Mark]) -> Mark:
    """Several marks as one character."""
    boxes = np.array([m.box for m in marks])
    box = (int(boxes[:, 0].min()), int(boxes[:, 1].min()), int(boxes[:, 2].max()), int(boxes[:, 3].max()))
    return Mark(box=box, mask=np.logical_or.reduce([m.mask for m in marks]))


def cut_candidates(ink: np.ndarray, mark: Mark, most: int = 10) -> list[int]:
    """Columns where a wide mark (touching characters) may be cut, left to right, its own edges included: the
    lowest points of its ink's vertical projection, at least a sixth of its height apart, where it holds at most
    three quarters of the ink of a typical column."""
    x0, y0, x1, y1 = mark.box
    profile = (ink[y0:y1, x0:x1] * mark.mask[y0:y1, x0:x1]).sum(axis=0)
    if len(profile) >= 5:  # a little smoothing: one stray pixel is no valley
        profile = np.convolve(profile, np.ones(3) / 3, mode="same")
    spacing = max(2, mark.height // 6)
    # touching characters meet at a point; a cut through full strokes (an A's side, an m's stem) splits one
    # character. A mark wider than _SEVERAL is several characters almost surely: any valley may be where they meet
    # (a 9's tail running into a 0 crosses a column as thickly as a stroke)
    thin = (_THIN_CUT if mark.width < _SEVERAL * mark.height else 1.0) * float(np.median(profile))
    chosen: list[int] = []
    for col in np.argsort(profile, kind="stable"):
        if profile[col] > thin:
            break
        if spacing <= col <= len(profile) - spacing and all(abs(col - c) >= spacing for c in chosen):
            chosen.append(int(col))
            if len(chosen) == most:
                break
    return [x0, *sorted(x0 + c for c in chosen), x1]


def evenly_between(cuts: list[int], step: int) -> list[int]:
    """Cuts (sorted columns) with more added evenly wherever two are more than `step` apart, for `cut_path` to
    start from: characters that overlap in columns leave no valley in the ink between them."""
    out = [cuts[0]]
    for a, b in zip(cuts, cuts[1:]):
        n = -(-(b - a) // max(1, step))  # pieces no wider than a step
        out += [a + round(k * (b - a) / n) for k in range(1, n)] + [b]
    return out


Cut = int | np.ndarray  # a straight cut at a column, or per row of a mark's box the column a cut runs at


def cut_path(ink: np.ndarray, mark: Mark, column: int, reach: int) -> np.ndarray:
    """The cut through a mark near `column` that crosses the least ink: per row of its box, top to bottom, the
    column it runs at, moving at most one column a row and staying within `reach` of `column`. Touching characters
    that overlap in columns (a 9's tail under a 6) are parted along the paper between them, which no straight cut
    finds."""
    x0, y0, x1, y1 = mark.box
    lo, hi = max(x0, column - reach), min(x1, column + reach + 1)
    cost = ink[y0:y1, lo:hi] * mark.mask[y0:y1, lo:hi]
    # through clean paper, the path stays straight and near where it started
    cost = cost + 1e-3 * np.abs(np.arange(lo, hi) - column)[None, :]
    total = cost[0].copy()
    moves = np.zeros(cost.shape, np.int8)
    inf = np.full(1, np.inf)
    for y in range(1, len(cost)):
        options = np.stack([np.concatenate([inf, total[:-1]]) + 1e-3, total, np.concatenate([total[1:], inf]) + 1e-3])
        moves[y] = options.argmin(0)
        total = options[moves[y], np.arange(len(total))] + cost[y]
    x = int(total.argmin())
    path = np.empty(len(cost), np.int64)
    for y in range(len(cost) - 1, -1, -1):
        path[y] = x
        x += int(moves[y, x]) - 1
    return lo + path


def between(mark: Mark, a: Cut, b: Cut) -> Mark | None:
    """The part of a mark between two cuts (columns, or `cut_path`s), boxed to its own ink; None if it holds none."""
    x0, y0, x1, y1 = mark.box
    xs = np.arange(x0, x1)[None, :]
    left = np.broadcast_to(np.asarray(a).reshape(-1, 1), (y1 - y0, 1))
    right = np.broadcast_to(np.asarray(b).reshape(-1, 1), (y1 - y0, 1))
    mask = np.zeros_like(mark.mask)
    mask[y0:y1, x0:x1] = mark.mask[y0:y1, x0:x1] & (xs >= left) & (xs < right)
    ys, cols = np.nonzero(mask[y0:y1, x0:x1])
    if len(ys) == 0:
        return None
    return Mark(box=(x0 + int(cols.min()), y0 + int(ys.min()), x0 + int(cols.max()) + 1, y0 + int(ys.max()) + 1),
                mask=mask)
