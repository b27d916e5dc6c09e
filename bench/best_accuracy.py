"""The best single-model MNIST test accuracy of digitkit's accuracy recipe (`--preset accurate`), and its wall time,
beside the default recipe (`digitkit train mnist`) run in the same invocation.

    DIGITKIT_DATA=../shared/datasets python bench/best_accuracy.py [--seeds 0]

No test-time augmentation (flipping digits changes them), no ensembles: one model, one forward pass per image.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def run(preset: str, data_dir: Path, seed: int) -> tuple[float, float, int]:
    from digitkit import api

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = api.train("mnist", preset=preset, data_dir=data_dir, out=Path(tmp) / "m.safetensors", seed=seed)
        return result.metrics["test_accuracy"], time.perf_counter() - start, result.metrics["epochs_run"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DIGITKIT_DATA", "../shared/datasets")))
    args = parser.parse_args()

    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores")
    rows = []
    for seed in args.seeds:
        for preset in ("default", "accurate"):
            accuracy, seconds, epochs = run(preset, args.data_dir, seed)
            rows.append((preset, seed, accuracy, seconds, epochs))
            print(f"  {preset:<9} seed {seed}: test accuracy {accuracy:.4f} in {seconds:.0f} s ({epochs} epochs)", flush=True)
    print(f"{'preset':<9} {'seed':>4} {'test acc':>9} {'seconds':>8} {'epochs':>7}")
    for preset, seed, accuracy, seconds, epochs in rows:
        print(f"{preset:<9} {seed:>4} {accuracy:>9.4f} {seconds:>8.0f} {epochs:>7}")
    best = {p: max(a for q, _, a, _, _ in rows if q == p) for p in ("default", "accurate")}
    secs = {p: statistics.median(s for q, _, _, s, _ in rows if q == p) for p in ("default", "accurate")}
    print(f"best single-model test accuracy: accurate {best['accurate']:.2%} ({secs['accurate']:.0f} s), "
          f"default {best['default']:.2%} ({secs['default']:.0f} s)")
    print(f"ratio: the accurate recipe takes {secs['accurate'] / secs['default']:.2f}x the default's time and makes "
          f"{(1 - best['accurate']) / (1 - best['default']):.2f}x its test errors")


if __name__ == "__main__":
    main()
