"""Prepare the next batches in a background thread while the current one trains.

A speech step spends much of its time outside the model: every training sequence is joined from recordings, sped
up or slowed down, reverberated and mixed with noise on the CPU first. On a CPU the small recurrent model's
matrices keep two cores only partly busy, and on a GPU the CPU would otherwise sit idle while the GPU works; either
way that work overlaps the step instead of preceding it. Results come in the order of the inputs, so a run that
draws its randomness for the thread from its own seeded generator stays repeatable bit for bit.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
U = TypeVar("U")

_DONE = object()


def prefetched(make: Callable[[T], U], items: Iterable[T], depth: int = 2) -> Iterator[U]:
    """`make(item)` for each item, in order, computed up to `depth` items ahead in one background thread. An error
    in `make` is raised here, at the item it happened on; closing the iterator early stops the thread."""
    ready: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(value: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if stop.is_set() or not put((make(item), None)):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it where the item was wanted
            put((None, exc))
            return
        put((_DONE, None))

    thread = threading.Thread(target=work, name="digitkit-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            value, error = ready.get()
            if error is not None:
                raise error
            if value is _DONE:
                return
            yield value
    finally:
        stop.set()
        thread.join()
