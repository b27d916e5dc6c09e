"""digitkit on one CUDA GPU: time to 99.0 % MNIST for `--preset fast` against the PyTorch MNIST example's recipe on
the same GPU, with where the time goes; the MNIST defaults; CIFAR-10 resnet training images/s; the FSDD defaults.

    DIGITKIT_DATA=../shared/datasets python bench/gpu.py [--rounds 1] [--skip cifar,fsdd]

Every figure comes from this one run on this one GPU. Without a CUDA GPU it says so and exits 0.

Breakdown of a digitkit run: `process` is a whole `digitkit train` command as a user types it (Python start,
imports, CUDA start, data, training, test, checkpoint writes); `setup` is reading the data onto the GPU and
building the model, `training` the epochs, `test` the final test pass (api.train's own clocks). The reference's
clock is bench/time_to_accuracy.py's (dataset, training, a test pass after every epoch), on the GPU with the
example's own loader settings (one worker, pinned memory).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def timed_process(args: list[str], data_dir: Path) -> tuple[float, dict]:
    """Wall seconds of one `digitkit ...` command and its --json output."""
    env = {**os.environ, "DIGITKIT_DATA": str(data_dir)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "digitkit", *args, "--json"], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"digitkit {' '.join(args)} failed:\n{proc.stderr}")
    return seconds, json.loads(proc.stdout.splitlines()[-1])


def train_in_process(dataset: str, data_dir: Path, **options) -> tuple[float, dict, list]:
    from digitkit import api

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = api.train(dataset, out=Path(tmp) / "run.safetensors", data_dir=data_dir, device="cuda", **options)
        return time.perf_counter() - start, result.metrics, result.history


def breakdown(label: str, process_s: float, m: dict) -> None:
    print(f"  {label}: test accuracy {m['test_accuracy']:.4f}; process {process_s:.2f} s = setup {m['setup_seconds']:.2f} s "
          f"+ training {m['train_seconds']:.2f} s ({m['epochs_run']} epochs) + test {m['test_seconds']:.2f} s "
          f"+ start, imports and writes {process_s - m['setup_seconds'] - m['train_seconds'] - m['test_seconds']:.2f} s")


def mnist(args) -> None:
    from time_to_accuracy import reference_run

    print(f"MNIST to {args.target:.1%}:")
    fast, reference = [], []
    for r in range(args.rounds):
        seconds, m = timed_process(["train", "mnist", "--preset", "fast", "--device", "cuda", "--seed", str(r),
                                    "--out", str(args.tmp / "fast.safetensors")], args.data_dir)
        breakdown(f"digitkit --preset fast, seed {r}", seconds, m)
        fast.append((m["train_seconds"], seconds, m["test_accuracy"] >= args.target))
        ref_s, ref_acc, epochs, reached = reference_run(args.data_dir, args.target, 6, r, device=torch.device("cuda"))
        print(f"  reference, seed {r}: {'reached' if reached else 'did NOT reach'} {args.target:.1%} after {epochs} "
              f"epoch(s), {ref_s:.1f} s (best {ref_acc:.4f})")
        reference.append((ref_s, reached))
    train_s = statistics.median(t for t, _, _ in fast)
    process_s = statistics.median(p for _, p, _ in fast)
    ref_s = statistics.median(s for s, _ in reference)
    ok = all(ok for *_, ok in fast) and all(ok for _, ok in reference)
    print(f"  median: digitkit fast {train_s:.2f} s of training ({process_s:.1f} s whole process), reference {ref_s:.1f} s"
          + ("" if ok else " (some run missed the target: see above)"))
    print(f"  ratio: digitkit's training takes {train_s / ref_s:.3f}x the reference's time (1/{ref_s / train_s:.0f}); "
          f"its whole process {process_s / ref_s:.3f}x")
    seconds, m = timed_process(["train", "mnist", "--device", "cuda", "--out", str(args.tmp / "default.safetensors")], args.data_dir)
    breakdown("digitkit train mnist (the defaults)", seconds, m)


def cifar(args) -> None:
    from digitkit.data.registry import get_dataset, load

    n = len(load(get_dataset("cifar10"), args.data_dir, allow_download=False).train_y)
    _, _, history = train_in_process("cifar10", args.data_dir, model="resnet", epochs=4, test=False)
    later = [row["seconds"] for row in history[1:]]  # the first epoch includes cuDNN's algorithm search
    print(f"CIFAR-10 resnet (the default recipe, {n:,} training images): {n / statistics.median(later):,.0f} images/s "
          f"(median of epochs 2-{len(history)}; epoch 1 {history[0]['seconds']:.2f} s)")


def fsdd(args) -> None:
    seconds, m = timed_process(["train", "fsdd", "--device", "cuda", "--out", str(args.tmp / "fsdd.safetensors")], args.data_dir)
    print(f"FSDD (the defaults): {m['test_accuracy']:.2%} single digits, WER {m['test_sequence_wer']:.2%} on strings; "
          f"{m['train_seconds']:.1f} s of training ({m['epochs_run']} epochs), process {seconds:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out: mnist, cifar, fsdd")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DIGITKIT_DATA", "../shared/datasets")))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU is visible to torch here: nothing to measure")
        return
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}")
    skip = set(filter(None, args.skip.split(",")))
    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = Path(tmp)
        for name, part in (("mnist", mnist), ("cifar", cifar), ("fsdd", fsdd)):
            if name not in skip:
                part(args)


if __name__ == "__main__":
    main()
