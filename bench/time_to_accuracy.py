"""Wall time until MNIST test accuracy >= 99.0 %: the PyTorch MNIST example's recipe vs `digitkit train --preset fast`.

Both run in this one process, alternating round by round, because shared machines are noisy; the table shows
every run, and the last line the ratio of the medians.

    DIGITKIT_DATA=../shared/datasets python bench/time_to_accuracy.py [--rounds 2] [--target 0.99]

The reference is written here from the example's description: conv 32 -> conv 64 (3x3), max-pool, dropout 0.25,
fc 9216 -> 128, dropout 0.5, fc -> 10; Adadelta lr 1.0, StepLR gamma 0.7 per epoch, batch 64, torchvision MNIST
through a DataLoader with per-sample ToTensor + Normalize, test after every epoch. Its clock includes building the
dataset and every test pass, as a user running it would wait for them; digitkit's clock is the whole `train()`
call (reading the data, two epochs, the final test pass), and the accuracy is that final test figure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F


class ReferenceNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(self.dropout1(x), 1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)


def reference_run(data_dir: Path, target: float, max_epochs: int, seed: int) -> tuple[float, float, int, bool]:
    """-> (seconds to reach the target, or all the seconds spent; best test accuracy; epochs run; reached?)."""
    from torchvision import datasets, transforms

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        # torchvision extracts next to the .gz files, so give it a writable copy of MNIST/raw
        shutil.copytree(data_dir / "MNIST" / "raw", Path(tmp) / "MNIST" / "raw")
        start = time.perf_counter()
        tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
        train_set = datasets.MNIST(tmp, train=True, download=True, transform=tf)
        test_set = datasets.MNIST(tmp, train=False, transform=tf)
        train_loader = torch.utils.data.DataLoader(train_set, batch_size=64, shuffle=True)
        test_loader = torch.utils.data.DataLoader(test_set, batch_size=1000)
        model = ReferenceNet()
        optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
        best = 0.0
        for epoch in range(1, max_epochs + 1):
            model.train()
            for x, y in train_loader:
                optimizer.zero_grad()
                F.nll_loss(model(x), y).backward()
                optimizer.step()
            model.eval()
            correct = 0
            with torch.no_grad():
                for x, y in test_loader:
                    correct += (model(x).argmax(1) == y).sum().item()
            accuracy = correct / len(test_set)
            best = max(best, accuracy)
            scheduler.step()
            print(f"  reference epoch {epoch}: test accuracy {accuracy:.4f} at {time.perf_counter() - start:.1f} s", file=sys.stderr)
            if accuracy >= target:
                return time.perf_counter() - start, best, epoch, True
        return time.perf_counter() - start, best, max_epochs, False


def digitkit_run(data_dir: Path, target: float, seed: int) -> tuple[float, float, int, bool]:
    from digitkit import api

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = api.train("mnist", preset="fast", data_dir=data_dir, out=Path(tmp) / "fast.safetensors", seed=seed)
        seconds = time.perf_counter() - start
    accuracy = result.metrics["test_accuracy"]
    print(f"  digitkit --preset fast: test accuracy {accuracy:.4f} at {seconds:.1f} s", file=sys.stderr)
    return seconds, accuracy, result.metrics["epochs_run"], accuracy >= target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--max-epochs", type=int, default=6, help="give the reference up to this many epochs")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DIGITKIT_DATA", "../shared/datasets")))
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; target {args.target:.3f}")
    rows = []
    for r in range(1, args.rounds + 1):
        for name, run in (("reference", lambda: reference_run(args.data_dir, args.target, args.max_epochs, r)),
                          ("digitkit fast", lambda: digitkit_run(args.data_dir, args.target, r))):
            seconds, accuracy, epochs, reached = run()
            rows.append((r, name, seconds, accuracy, epochs, reached))

    print(f"{'round':>5}  {'recipe':<14} {'seconds':>8} {'reached':>8} {'best test acc':>14} {'epochs':>7}")
    for r, name, seconds, accuracy, epochs, reached in rows:
        print(f"{r:>5}  {name:<14} {seconds:>8.1f} {'yes' if reached else 'NO':>8} {accuracy:>14.4f} {epochs:>7}")
    summary = {}
    for name in ("reference", "digitkit fast"):
        mine = [row for row in rows if row[1] == name]
        summary[name] = (statistics.median(row[2] for row in mine), all(row[5] for row in mine))
    (ref, ref_ok), (ours, ours_ok) = summary["reference"], summary["digitkit fast"]
    def said(seconds, ok):
        return f"{seconds:.1f} s" if ok else f"not reached in {seconds:.1f} s"
    print(f"median time to {args.target:.1%}: reference {said(ref, ref_ok)}, digitkit fast {said(ours, ours_ok)}")
    if not ours_ok:
        print("ratio: undefined: digitkit fast did not reach the target in every round")
    elif ref_ok:
        print(f"ratio: digitkit reaches {args.target:.1%} in {ours / ref:.3f}x the reference's time ({ref / ours:.1f}x faster)")
    else:
        print(f"ratio: the reference did not reach {args.target:.1%} within {args.max_epochs} epochs in every round; "
              f"digitkit took at most {ours / ref:.3f}x that time (at least {ref / ours:.1f}x faster)")


if __name__ == "__main__":
    main()
