"""Wall time until 97 % single-digit accuracy on the FSDD test split (indices 0-4 of every speaker): a typical
tutorial recipe vs `digitkit train fsdd --target-accuracy 0.97`, in one process, alternating round by round.

    DIGITKIT_DATA=../shared/datasets python bench/speech_time_to_accuracy.py [--rounds 2]

The baseline is the recipe FSDD tutorials use, written here from that description: a Dataset that reads each WAV
and computes 40 MFCCs per item, padded or cut to 1 s, a DataLoader (batch 32, shuffled), a 2-layer LSTM (128 units)
whose last hidden state feeds a linear classifier, Adam 1e-3, cross-entropy, test accuracy after every epoch.
digitkit's run stops once its validation accuracy reaches the target; its clock is the whole `train()` call, and
its accuracy the test figure that call reports (the CTC model is also a connected-digit recognizer).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F


class FsddClips(torch.utils.data.Dataset):
    def __init__(self, files: list[Path]):
        import torchaudio.transforms as T

        self.files = files
        self.mfcc = T.MFCC(sample_rate=8000, n_mfcc=40, melkwargs={"n_fft": 256, "hop_length": 80, "n_mels": 40})

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        import soundfile as sf

        wave, _ = sf.read(str(self.files[i]), dtype="float32")
        wave = torch.from_numpy(wave)[:8000]
        wave = F.pad(wave, (0, 8000 - len(wave)))
        return self.mfcc(wave).T, int(self.files[i].name[0])  # [frames, 40]


class LstmClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(40, 128, num_layers=2, batch_first=True)
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.fc(h[-1])


def baseline_run(data_dir: Path, target: float, max_epochs: int, seed: int) -> tuple[float, float, int, bool]:
    torch.manual_seed(seed)
    files = sorted((data_dir / "fsdd" / "recordings").glob("*.wav"))
    test = [f for f in files if int(f.stem.split("_")[2]) < 5]
    train = [f for f in files if int(f.stem.split("_")[2]) >= 5]
    start = time.perf_counter()
    train_loader = torch.utils.data.DataLoader(FsddClips(train), batch_size=32, shuffle=True)
    test_loader = torch.utils.data.DataLoader(FsddClips(test), batch_size=100)
    model = LstmClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    best = 0.0
    for epoch in range(1, max_epochs + 1):
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            correct = sum((model(x).argmax(1) == y).sum().item() for x, y in test_loader)
        accuracy = correct / len(test)
        best = max(best, accuracy)
        print(f"  baseline epoch {epoch}: test accuracy {accuracy:.4f} at {time.perf_counter() - start:.1f} s", file=sys.stderr)
        if accuracy >= target:
            return time.perf_counter() - start, best, epoch, True
    return time.perf_counter() - start, best, max_epochs, False


def digitkit_run(data_dir: Path, target: float, seed: int) -> tuple[float, float, int, bool]:
    from digitkit import api

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = api.train("fsdd", data_dir=data_dir, out=Path(tmp) / "fsdd.safetensors", seed=seed, target_accuracy=target)
        seconds = time.perf_counter() - start
    accuracy = result.metrics["test_accuracy"]
    print(f"  digitkit train fsdd: test accuracy {accuracy:.4f} at {seconds:.1f} s ({result.stop_reason})", file=sys.stderr)
    return seconds, accuracy, result.metrics["epochs_run"], accuracy >= target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--target", type=float, default=0.97)
    parser.add_argument("--max-epochs", type=int, default=40, help="give the baseline up to this many epochs")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DIGITKIT_DATA", "../shared/datasets")))
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; target {args.target:.3f}")
    rows = []
    for r in range(1, args.rounds + 1):
        for name, run in (("baseline", lambda: baseline_run(args.data_dir, args.target, args.max_epochs, r)),
                          ("digitkit", lambda: digitkit_run(args.data_dir, args.target, r))):
            rows.append((r, name, *run()))
    print(f"{'round':>5}  {'recipe':<9} {'seconds':>8} {'reached':>8} {'best test acc':>14} {'epochs':>7}")
    for r, name, seconds, accuracy, epochs, reached in rows:
        print(f"{r:>5}  {name:<9} {seconds:>8.1f} {'yes' if reached else 'NO':>8} {accuracy:>14.4f} {epochs:>7}")
    med = {n: (statistics.median(x[2] for x in rows if x[1] == n), all(x[5] for x in rows if x[1] == n)) for n in ("baseline", "digitkit")}
    (base, base_ok), (ours, ours_ok) = med["baseline"], med["digitkit"]
    print(f"median seconds: baseline {base:.1f} ({'reached' if base_ok else 'NOT reached'}), "
          f"digitkit {ours:.1f} ({'reached' if ours_ok else 'NOT reached'})")
    if ours_ok and base_ok:
        print(f"ratio: digitkit reaches {args.target:.0%} in {ours / base:.3f}x the baseline's time ({base / ours:.1f}x faster)")
    elif ours_ok:
        print(f"ratio: the baseline did not reach {args.target:.0%} in {args.max_epochs} epochs; digitkit took {ours / base:.3f}x that time")
    else:
        print("ratio: undefined: digitkit did not reach the target in every round")


if __name__ == "__main__":
    main()
