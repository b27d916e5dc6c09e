"""MNIST training with 1 process against 2 processes (torchrun, gloo on loopback), same config and same total
batch, alternating round by round in one invocation: seconds per epoch and final test accuracy.

    DIGITKIT_DATA=../shared/datasets python bench/distributed.py [--rounds 2] [--epochs 3]

Each run is a real `digitkit train mnist` process (`--nproc 2` for the second); its per-epoch time is the
training loop's own clock (data loading and start-up excluded), its accuracy the test figure it reports. With
N processes on one machine each gets cores/N threads, so on a small CPU expect about the same speed, not N
times: this shows the path works and what it costs; the speed-up comes from adding machines or GPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run(nproc: int, args: argparse.Namespace, folder: Path) -> tuple[float, float, float]:
    out = folder / f"mnist-{nproc}.safetensors"
    command = [sys.executable, "-m", "digitkit", "train", "mnist", "--epochs", str(args.epochs), "--patience", "0",
               "--seed", "0", "--out", str(out), "--json", "-q", "--nproc", str(nproc)]
    env = {**os.environ, "DIGITKIT_DATA": str(args.data_dir)}
    threads = max(1, (os.cpu_count() or 1) // nproc)
    env["OMP_NUM_THREADS"] = str(threads)
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{proc.stderr}")
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    return m["train_seconds"] / m["epochs_run"], m["test_accuracy"], m["train_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DIGITKIT_DATA", "../shared/datasets")))
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; digitkit train mnist --epochs {args.epochs} --patience 0 (default CNN, batch 64 in all)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(1, args.rounds + 1):
            for nproc in (1, 2):
                per_epoch, accuracy, total = run(nproc, args, Path(tmp))
                rows.append((r, nproc, per_epoch, accuracy, total))
                print(f"round {r}  processes {nproc}  s/epoch {per_epoch:7.1f}  train s {total:7.1f}  test acc {accuracy:.4f}", flush=True)
    med = {n: statistics.median(row[2] for row in rows if row[1] == n) for n in (1, 2)}
    acc = {n: statistics.median(row[3] for row in rows if row[1] == n) for n in (1, 2)}
    print(f"median s/epoch: 1 process {med[1]:.1f}, 2 processes {med[2]:.1f}; "
          f"median test accuracy: {acc[1]:.4f} vs {acc[2]:.4f}")
    print(f"ratio: 2 processes take {med[2] / med[1]:.2f}x the 1-process time per epoch; "
          f"accuracy differs by {abs(acc[2] - acc[1]) * 100:.2f} points")


if __name__ == "__main__":
    main()
