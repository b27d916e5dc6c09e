"""Speech training with its sequences rendered in a background thread (`training.prefetch`) against rendering each
batch in line before its step, in one process, alternating round by round.

    DIGITKIT_DATA=../shared/datasets python bench/speech_prefetch.py [--dataset digits] [--epochs 4] [--rounds 2]

Both ways draw the same random numbers in the same order, so each pair of runs must end with the same losses (the
script says whether they do); only the time differs. The time is the epochs' own (training and validation),
without the first epoch, which pays for warm-up. Measure on a quiet machine: two cores shared with anything else
swing these timings.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def in_line(make, items, depth: int = 2):
    """What `prefetched` replaces: each batch rendered when it is wanted, in the training thread."""
    return map(make, items)


def timed_run(dataset: str, data_dir: Path, epochs: int) -> tuple[float, list[float]]:
    from digitkit import api

    with tempfile.TemporaryDirectory() as tmp:
        result = api.train(dataset, data_dir=data_dir, out=Path(tmp) / "run.safetensors", epochs=epochs, seed=0)
    history = result.history
    return sum(row["seconds"] for row in history[1:]) / max(1, len(history) - 1), [row["train_loss"] for row in history]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits", choices=("digits", "fsdd"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DIGITKIT_DATA", ROOT.parent / "shared" / "datasets")))
    args = parser.parse_args()

    import digitkit.tasks.speech as speech
    from digitkit.training.prefetch import prefetched

    times: dict[str, list[float]] = {"in line": [], "prefetched": []}
    same = True
    for r in range(1, args.rounds + 1):
        losses = []
        for name, how in (("in line", in_line), ("prefetched", prefetched)):
            speech.prefetched = how
            seconds, run_losses = timed_run(args.dataset, args.data_dir, args.epochs)
            times[name].append(seconds)
            losses.append(run_losses)
            print(f"  round {r}, {name}: {seconds:.2f} s per epoch", file=sys.stderr)
        same = same and losses[0] == losses[1]
    a, b = statistics.median(times["in line"]), statistics.median(times["prefetched"])
    print(f"{args.dataset}, {args.epochs} epochs x {args.rounds} rounds (median seconds per epoch after the first): "
          f"in line {a:.2f} s, prefetched {b:.2f} s: {a / b:.2f}x; same losses both ways: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
