"""The background thread that prepares the next training batches: order, errors, early stops, and overlap."""

import threading
import time

import pytest

from digitkit.training.prefetch import prefetched


def test_results_come_in_order_and_all_of_them():
    assert list(prefetched(lambda x: x * x, range(50), depth=3)) == [x * x for x in range(50)]
    assert list(prefetched(lambda x: x, [])) == []


def test_an_error_is_raised_at_its_item_after_the_ones_before():
    def make(x: int) -> int:
        if x == 3:
            raise ValueError("bad item 3")
        return x

    seen = []
    with pytest.raises(ValueError, match="bad item 3"):
        for value in prefetched(make, range(10)):
            seen.append(value)
    assert seen == [0, 1, 2]


def test_stopping_early_ends_the_thread():
    made = []
    results = prefetched(lambda x: made.append(x) or x, range(10_000), depth=2)
    assert next(results) == 0
    results.close()
    assert not any(t.name == "digitkit-prefetch" for t in threading.enumerate())
    assert len(made) < 10  # it stopped making items, not only handing them over


def test_making_overlaps_the_consumers_work():
    """Five items that each take 0.1 s to make and 0.1 s to use: 1 s one after the other, about 0.6 s overlapped."""
    start = time.perf_counter()
    for _ in prefetched(lambda x: time.sleep(0.1), range(5)):
        time.sleep(0.1)
    assert time.perf_counter() - start < 0.85
