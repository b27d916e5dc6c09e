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

import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from _common import alternate, digitkit_run, parse_args, report


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


def reference_run(data_dir: Path, target: float, max_epochs: int, seed: int,
                  device: torch.device = torch.device("cpu")) -> tuple[float, float, int, bool]:
    """-> (seconds to reach the target, or all the seconds spent; best test accuracy; epochs run; reached?). On
    CUDA with the example's own loader settings: one worker process, pinned memory."""
    from torchvision import datasets, transforms

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        # torchvision extracts next to the .gz files, so give it a writable copy of MNIST/raw
        shutil.copytree(data_dir / "MNIST" / "raw", Path(tmp) / "MNIST" / "raw")
        start = time.perf_counter()
        tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
        train_set = datasets.MNIST(tmp, train=True, download=True, transform=tf)
        test_set = datasets.MNIST(tmp, train=False, transform=tf)
        cuda = {"num_workers": 1, "pin_memory": True} if device.type == "cuda" else {}
        train_loader = torch.utils.data.DataLoader(train_set, batch_size=64, shuffle=True, **cuda)
        test_loader = torch.utils.data.DataLoader(test_set, batch_size=1000, **cuda)
        model = ReferenceNet().to(device)
        optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
        best = 0.0
        for epoch in range(1, max_epochs + 1):
            model.train()
            for x, y in train_loader:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                optimizer.zero_grad()
                F.nll_loss(model(x), y).backward()
                optimizer.step()
            model.eval()
            correct = 0
            with torch.no_grad():
                for x, y in test_loader:
                    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                    correct += (model(x).argmax(1) == y).sum().item()
            accuracy = correct / len(test_set)
            best = max(best, accuracy)
            scheduler.step()
            print(f"  reference epoch {epoch}: test accuracy {accuracy:.4f} at {time.perf_counter() - start:.1f} s", file=sys.stderr)
            if accuracy >= target:
                return time.perf_counter() - start, best, epoch, True
        return time.perf_counter() - start, best, max_epochs, False


def main() -> None:
    args = parse_args(__doc__, 0.99, 6, "reference")
    rows = alternate(args.rounds, ("reference", lambda r: reference_run(args.data_dir, args.target, args.max_epochs, r)),
                     ("digitkit fast", lambda r: digitkit_run("mnist", "digitkit --preset fast", args.data_dir, args.target, r, preset="fast")))
    report(rows, "reference", "digitkit fast", args.target, args.max_epochs)


if __name__ == "__main__":
    main()
