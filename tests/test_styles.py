"""The training copies of digits in other hands' styles (digitkit/data/styles.py)."""

from __future__ import annotations

import math
import random

import torch

from digitkit.data import styles


def _ring() -> torch.Tensor:
    """A zero: an ellipse of ink, uint8 [28, 28]."""
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    r = torch.hypot((xs - 14) / 6, (ys - 14) / 9)
    return ((1.3 - (r - 1).abs() * 8).clamp(0, 1) * 255).to(torch.uint8)


def _seven() -> torch.Tensor:
    top = styles.segment((8, 5), (20, 5), 1.2)
    stem = styles.segment((20, 5), (12, 23), 1.2)
    return (torch.maximum(top, stem) * 255).to(torch.uint8)


def _batch(n: int = 40):
    x = torch.stack([_ring() if i % 2 == 0 else _seven() for i in range(n)])[:, None]
    y = torch.tensor([0 if i % 2 == 0 else 7 for i in range(n)])
    return x, y


def test_counts_labels_and_seed():
    x, y = _batch()
    ex, ey = styles.styled(x, y, seed=3)
    zeros, sevens = 20, 20
    expected = (round(zeros * styles.SLASHED_ZEROS) + round(sevens * styles.BARRED_SEVENS)
                + round(len(y) * styles.OUTLINED))
    assert len(ex) == len(ey) == expected
    assert ex.dtype == torch.uint8 and ex.shape[1:] == (1, 28, 28)
    assert int((ey == 0).sum()) >= round(zeros * styles.SLASHED_ZEROS)  # copies keep their labels
    again = styles.styled(x, y, seed=3)
    assert torch.equal(again[0], ex) and torch.equal(again[1], ey)
    other = styles.styled(x, y, seed=4)
    assert not torch.equal(other[0], ex)


def test_slash_crosses_the_zero_from_below_left_to_above_right():
    zero = _ring().float() / 255
    line = styles.slash(zero, random.Random(0))[0]
    assert line[14, 14] > 0.9  # through the middle, where a zero has no ink
    rows = torch.nonzero(line > 0.5)
    low, high = rows[rows[:, 0].argmax()], rows[rows[:, 0].argmin()]
    assert low[1] < high[1]  # the bottom end is left of the top end
    assert int(rows[:, 0].max() - rows[:, 0].min()) >= 16  # about as tall as the zero


def test_bar_crosses_the_sevens_stem_and_nothing_else():
    seven = _seven().float() / 255
    line = styles.bar(seven, random.Random(1))[0]
    rows = torch.nonzero(line > 0.5)[:, 0]
    assert 10 <= float(rows.float().mean()) <= 18  # about half-way down
    assert int((line > 0.5).sum()) > 8
    assert torch.equal(styles.bar(torch.zeros(28, 28), random.Random(1)), torch.zeros(1, 28, 28))


def test_outline_leaves_the_stroke_hollow():
    zero = _ring().float()[None, None] / 255
    hollow = styles.outline(zero, random.Random(0))
    centre = zero[0, 0] > 0.99
    assert float(hollow[0, 0][centre].mean()) < 0.05  # where the pen's middle was is paper now
    assert float(hollow.sum()) > float(zero.sum())  # and the edges around it are ink
    assert math.isclose(float(hollow.max()), 1.0, abs_tol=1e-6)
