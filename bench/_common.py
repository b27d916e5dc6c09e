"""What the time-to-accuracy scripts share: run the baseline and digitkit alternately, then report medians and
the ratio, saying plainly when a recipe did not reach the target."""

from __future__ import annotations

import statistics
from typing import Callable

# a run returns (seconds, best test accuracy, epochs, reached the target?)
Run = Callable[[int], tuple[float, float, int, bool]]


def digitkit_run(dataset: str, label: str, data_dir, target: float, seed: int, **options) -> tuple[float, float, int, bool]:
    """One timed `digitkit.api.train` call (the whole call: data, training, test) -> a Run's tuple."""
    import sys
    import tempfile
    import time
    from pathlib import Path

    from digitkit import api

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = api.train(dataset, data_dir=data_dir, out=Path(tmp) / "run.safetensors", seed=seed, **options)
        seconds = time.perf_counter() - start
    accuracy = result.metrics["test_accuracy"]
    print(f"  {label}: test accuracy {accuracy:.4f} at {seconds:.1f} s ({result.stop_reason})", file=sys.stderr)
    return seconds, accuracy, result.metrics["epochs_run"], accuracy >= target


def alternate(rounds: int, baseline: tuple[str, Run], ours: tuple[str, Run]) -> list[tuple]:
    rows = []
    for r in range(1, rounds + 1):
        for name, run in (baseline, ours):
            rows.append((r, name, *run(r)))
    return rows


def report(rows: list[tuple], baseline: str, ours: str, target: float, max_epochs: int) -> None:
    width = max(len(baseline), len(ours))
    print(f"{'round':>5}  {'recipe':<{width}} {'seconds':>8} {'reached':>8} {'best test acc':>14} {'epochs':>7}")
    for r, name, seconds, accuracy, epochs, reached in rows:
        print(f"{r:>5}  {name:<{width}} {seconds:>8.1f} {'yes' if reached else 'NO':>8} {accuracy:>14.4f} {epochs:>7}")
    summary = {}
    for name in (baseline, ours):
        mine = [row for row in rows if row[1] == name]
        summary[name] = (statistics.median(row[2] for row in mine), all(row[5] for row in mine))
    (base, base_ok), (mine, mine_ok) = summary[baseline], summary[ours]

    def said(seconds: float, ok: bool) -> str:
        return f"{seconds:.1f} s" if ok else f"not reached in {seconds:.1f} s"

    print(f"median time to {target:.1%}: {baseline} {said(base, base_ok)}, {ours} {said(mine, mine_ok)}")
    if not mine_ok:
        print(f"ratio: undefined: {ours} did not reach the target in every round")
    elif base_ok:
        pace = f"{base / mine:.1f}x faster" if mine <= base else f"{mine / base:.1f}x slower"
        print(f"ratio: {ours} reaches {target:.1%} in {mine / base:.3f}x the {baseline}'s time ({pace})")
    else:
        print(f"ratio: the {baseline} did not reach {target:.1%} within {max_epochs} epochs in every round; "
              f"{ours} took at most {mine / base:.3f}x that time (at least {base / mine:.1f}x faster)")


def parse_args(doc: str, target: float, max_epochs: int, baseline: str):
    import argparse
    import os
    from pathlib import Path

    import torch

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--target", type=float, default=target)
    parser.add_argument("--max-epochs", type=int, default=max_epochs, help=f"give the {baseline} up to this many epochs")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DIGITKIT_DATA", "../shared/datasets")))
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; target {args.target:.3f}")
    return args
