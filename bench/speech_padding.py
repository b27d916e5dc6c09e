"""How much padding a `digits` training epoch carries, with and without `--bucket`, on the real training data.

    DIGITKIT_DATA=../shared/datasets python bench/speech_padding.py [--epochs 3] [--batch 32]

On a CPU the recurrent layers train on the padded batch (`SpeechRecognizer.recurrent_dense`), so a batch costs
about its longest sequence times its size, padding included; on a GPU the steps a batch takes are its longest
sequence. An epoch of the `digits` recipe mixes 0.5-s noise, single words, strings of up to 7 words and runs of
other speech of up to 7 words, so batches drawn at random pad a lot. For each epoch's plan (the CTC phase's, which
holds the recorded strings) this prints the padded audio over the real audio and the sum of the batches' longest
sequences, in planned lengths (before tempo changes, gaps and overlaps: what `--bucket` sorts by), with and without
`--bucket`, and their ratios. No model runs: the figures are counts, the same on any machine.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch


def padding(batches: list[list], length) -> tuple[float, float]:
    """(padded samples over real samples, sum of each batch's longest sequence in samples)."""
    real = sum(length(item) for batch in batches for item in batch)
    longest = [max(map(length, batch)) for batch in batches]
    return sum(most * len(batch) for most, batch in zip(longest, batches)) / real, float(sum(longest))


def main() -> None:
    from digitkit.config import TrainConfig
    from digitkit.data.paths import resolve_data_dir
    from digitkit.data.sequences import plan_epoch
    from digitkit.report import ConsoleReporter
    from digitkit.tasks.speech import SpeechTask

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    cfg = TrainConfig(dataset="digits", model="lstm", batch_size=args.batch)
    prepared = SpeechTask().prepare(cfg, resolve_data_dir(args.data_dir), torch.device("cpu"), False, ConsoleReporter())
    data = prepared.batches
    rows = []
    for epoch in range(args.epochs):
        # the CTC phase's plan, with the recorded strings
        plan = plan_epoch(data.pools, data.recipe, True, torch.Generator().manual_seed(epoch))
        plain = data.batches(plan, args.batch, bucket=False)
        bucketed = data.batches(plan, args.batch, bucket=True, order_rng=torch.Generator().manual_seed(epoch))
        pad_plain, steps_plain = padding(plain, data.planned_length)
        pad_bucket, steps_bucket = padding(bucketed, data.planned_length)
        rows.append({"epoch": epoch, "sequences": len(plan), "batches": len(plain),
                     "padded_over_real": {"random": round(pad_plain, 3), "bucket": round(pad_bucket, 3)},
                     "longest_sum_seconds": {"random": round(steps_plain / data.sample_rate, 1),
                                             "bucket": round(steps_bucket / data.sample_rate, 1)},
                     "padded_ratio": round(pad_bucket / pad_plain, 3),
                     "longest_sum_ratio": round(steps_bucket / steps_plain, 3)})
        print(f"epoch plan {epoch}: padded audio {pad_plain:.2f}x the real audio at random, {pad_bucket:.2f}x "
              f"with --bucket ({pad_bucket / pad_plain:.2f} of it); sum of batches' longest sequences "
              f"{steps_plain / data.sample_rate:.0f} s against {steps_bucket / data.sample_rate:.0f} s "
              f"({steps_bucket / steps_plain:.2f})", file=sys.stderr)
    print(json.dumps({"batch": args.batch, "epochs": rows}))


if __name__ == "__main__":
    main()
