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

import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from _common import alternate, digitkit_run, parse_args, report


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


def main() -> None:
    args = parse_args(__doc__, 0.97, 40, "baseline")
    rows = alternate(args.rounds, ("baseline", lambda r: baseline_run(args.data_dir, args.target, args.max_epochs, r)),
                     ("digitkit", lambda r: digitkit_run("fsdd", "digitkit train fsdd", args.data_dir, args.target, r - 1,
                                                               target_accuracy=args.target)))
    report(rows, "baseline", "digitkit", args.target, args.max_epochs)


if __name__ == "__main__":
    main()
