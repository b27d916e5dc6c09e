"""Speech training-step time on this CPU: the recurrent layers on the padded batch, as `SpeechRecognizer` trains
on a CPU, against the same layers on the packed batch, as it trained before (and as it still evaluates). Both
compute the same outputs and gradients (tests/test_models.py); only the time differs.

    python bench/speech_step.py [--steps 10] [--batch 32] [--seconds 3]

Each step is forward, CTC loss, backward and an Adam step of the shipped recipe's model (2 bidirectional LSTM
layers of 128 over 40 ms steps) on random features whose lengths are spread from a third of `--seconds` to all of
it, as joined training sequences are. The two alternate step by step, so that load drift hits both alike. Prints
median seconds per step and the ratio. No data directory is needed: speed does not depend on feature values.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn


def packed_forward(model, feats: torch.Tensor, lengths: torch.Tensor):
    """`SpeechRecognizer.forward` with the recurrent layers on the packed batch, whatever the device."""
    x = model.front(feats.transpose(1, 2)).transpose(1, 2)
    out_lengths = model.output_lengths(lengths).clamp(min=1, max=x.shape[1])
    packed = nn.utils.rnn.pack_padded_sequence(x, out_lengths, batch_first=True, enforce_sorted=False)
    y, _ = model.rnn(packed)
    y, _ = nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=x.shape[1])
    return model.head(model.dropout(y)).log_softmax(-1), out_lengths


def main() -> None:
    from digitkit.models.speech import SpeechConfig, SpeechRecognizer
    from digitkit.tasks.speech import ctc_loss

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = SpeechRecognizer(SpeechConfig())
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    frames = int(args.seconds * 100)

    def step(forward) -> float:
        lengths = torch.randint(frames // 3, frames + 1, (args.batch,))
        feats = torch.randn(args.batch, int(lengths.max()), 40)
        targets = [torch.randint(1, 11, (int(torch.randint(1, 8, ())),)).tolist() for _ in range(args.batch)]
        start = time.perf_counter()
        log_probs, out_lengths = forward(feats, lengths)
        loss = ctc_loss(log_probs, out_lengths, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start

    paths = {"padded (digitkit now)": model, "packed (before)": lambda f, n: packed_forward(model, f, n)}
    times: dict[str, list[float]] = {name: [] for name in paths}
    for name, forward in paths.items():  # warm-up
        step(forward)
    for _ in range(args.steps):
        for name, forward in paths.items():
            times[name].append(step(forward))
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(f"speech training step, batch {args.batch}, up to {args.seconds:g} s, {torch.get_num_threads()} threads:")
    for name, median in medians.items():
        print(f"  {name:<22} median {median:.3f} s/step")
    padded, packed = medians.values()
    print(f"  packed / padded: {packed / padded:.2f}x")


if __name__ == "__main__":
    main()
