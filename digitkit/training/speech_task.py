"""Speech recognition as a training task for the one loop: every epoch packs the training recordings into
connected-word sequences (single words too), computes log-mel features per batch with SpecAugment masking, and
trains with CTC. Validation is single-word accuracy on held-out recordings."""

from __future__ import annotations

import math
from typing import Iterator

import torch
import torch.nn.functional as F

from digitkit.ctc import batch_greedy, word_error_rate
from digitkit.data.audio import LogMel, pad_batch
from digitkit.data.sequences import frame_utterance, join_words, sample_lengths
from digitkit.device import model_device
from digitkit.training.distributed import World, shard


ALIGNED_FRACTION = 0.4  # share of the epochs trained on the known alignment before CTC takes over


def spec_augment(feats: torch.Tensor, lengths: torch.Tensor, freq_masks: int = 2, freq_width: int = 6,
                 time_masks: int = 2, time_width: int = 8) -> torch.Tensor:
    """Zero random bands of mel bins and runs of frames, per utterance (Park et al., 2019). The bands are drawn on
    the host, one small draw each, and applied to the whole batch in one masked fill wherever `feats` are."""
    b, t, f = feats.shape
    frames = lengths.tolist()
    bands = []  # per utterance: (first, end) of each frequency band, then of each time run
    for i in range(b):
        row = []
        for _ in range(freq_masks):
            w = int(torch.randint(0, freq_width + 1, ()))
            f0 = int(torch.randint(0, max(1, f - w), ()))
            row.append((f0, f0 + w))
        for _ in range(time_masks):
            w = int(torch.randint(0, time_width + 1, ()))
            t0 = int(torch.randint(0, max(1, int(frames[i]) - w), ()))
            row.append((t0, t0 + w))
        bands.append(row)
    edges = torch.tensor(bands, dtype=torch.long).view(b, freq_masks + time_masks, 2)
    if feats.is_cuda:
        edges = edges.pin_memory().to(feats.device, non_blocking=True)
    freq, time = edges[:, :freq_masks], edges[:, freq_masks:]
    bins = torch.arange(f, device=feats.device).view(1, 1, f)
    steps = torch.arange(t, device=feats.device).view(1, 1, t)
    in_freq = ((bins >= freq[..., :1]) & (bins < freq[..., 1:])).any(1)  # [B, F]
    in_time = ((steps >= time[..., :1]) & (steps < time[..., 1:])).any(1)  # [B, T]
    return feats.masked_fill(in_time[:, :, None] | in_freq[:, None, :], 0)


def featurize(features: LogMel, waves: list[torch.Tensor], device: torch.device, augment: bool = False):
    """Pad a batch of recordings, move it to `device` once, and compute its log-mel features there."""
    padded, lengths = pad_batch(waves)
    if device.type == "cuda":
        padded = padded.pin_memory().to(device, non_blocking=True)
    feats, frames = features(padded.to(device), lengths)
    if augment:
        feats = spec_augment(feats, frames)
    return feats, frames


@torch.inference_mode()
def score_clips(model, features: LogMel, waves: list[torch.Tensor], targets: list[list[int]],
                batch_size: int = 64) -> tuple[float, float, float, list[list[int]]]:
    """(CTC loss per clip, exact-match accuracy, word error rate, hypotheses) of clips against token targets, run
    where the model is."""
    model.eval()
    device = model_device(model)
    losses, hyps = [], []
    for start in range(0, len(waves), batch_size):
        feats, frames = featurize(features, waves[start : start + batch_size], device)
        log_probs, out_lengths = model(feats, frames)
        losses.append(ctc_loss(log_probs, out_lengths, targets[start : start + batch_size], reduction="sum").item())
        hyps += batch_greedy(log_probs, out_lengths)
    accuracy = sum(h == t for h, t in zip(hyps, targets)) / max(len(targets), 1)
    return sum(losses) / max(len(targets), 1), accuracy, word_error_rate(targets, hyps), hyps


class SpeechTask:
    def __init__(self, train_waves: list[torch.Tensor], train_tokens: list[int], val_waves: list[torch.Tensor],
                 val_tokens: list[int], sample_rate: int, n_mels: int, device: torch.device, augment: bool = True,
                 max_words: int = 7, p_single: float = 0.3):
        self.train_waves, self.train_tokens = train_waves, train_tokens
        self.val_waves = [frame_utterance(w, sample_rate) for w in val_waves]
        self.val_tokens = val_tokens
        self.sample_rate, self.device, self.augment = sample_rate, device, augment
        self.features = LogMel(sample_rate, n_mels)
        self.max_words, self.p_single = max_words, p_single
        mean_words = p_single + (1 - p_single) * (2 + max_words) / 2
        self.sequences = max(1, math.ceil(len(train_waves) / mean_words))  # each recording about once per epoch
        self.aligned_phase = True

    def steps_per_epoch(self, batch_size: int) -> int:
        return (self.sequences + batch_size - 1) // batch_size

    def featurize(self, waves: list[torch.Tensor], augment: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        return featurize(self.features, waves, self.device, augment)

    def train_batches(self, batch_size: int, order_rng: torch.Generator | None = None, world: World = World()) -> Iterator[tuple[tuple, tuple, int]]:
        order = torch.randperm(len(self.train_waves), generator=order_rng).tolist()
        counts = sample_lengths(self.sequences, self.max_words, self.p_single, generator=order_rng)
        cursor = 0
        sequences = []
        for k in counts:
            picks = [order[(cursor + j) % len(order)] for j in range(k)]
            cursor += k
            sequences.append(picks)
        for start in range(0, len(sequences), batch_size):
            chunk = sequences[start : start + batch_size]
            if len(chunk) < world.size:  # too few left to give every rank one
                break
            chunk = shard(chunk, world)
            waves, spans = [], []
            for picks in chunk:
                spans.append([])
                waves.append(join_words([self.train_waves[i] for i in picks], self.sample_rate, spans=spans[-1]))
            targets = [[self.train_tokens[i] for i in picks] for picks in chunk]
            feats, frames = self.featurize(waves, augment=self.augment)
            yield (feats, frames), (targets, spans), len(chunk)

    def frame_labels(self, spans: list[list[tuple[int, int]]], targets: list[list[int]], frames: int, stride: int) -> torch.Tensor:
        """Each output frame's token on the known alignment: the word over its samples, blank (0) elsewhere."""
        labels = torch.zeros(len(targets), frames, dtype=torch.long)
        step = self.features.hop * stride
        for i, (seq_spans, seq_tokens) in enumerate(zip(spans, targets)):
            for (start, end), token in zip(seq_spans, seq_tokens):
                labels[i, start // step : min(frames, -(-end // step))] = token
        return labels

    def set_epoch(self, epoch: int, epochs: int) -> None:
        self.aligned_phase = epoch <= round(ALIGNED_FRACTION * epochs)

    def loss(self, model, inputs, targets, label_smoothing):
        """First cross-entropy on the known alignment of the joined sequences (each word's token over its frames,
        blank elsewhere): it teaches the acoustics in a fraction of the steps CTC needs to find alignments on its
        own. Then CTC alone, which sharpens that into CTC's usual one-spike-per-word output. Summing the two does
        not work: CTC pulls towards spikes, the frame loss towards dense runs, and the model stalls on blanks."""
        feats, frames = inputs
        tokens, spans = targets
        log_probs, out_lengths = model(feats, frames)
        if self.aligned_phase:
            labels = self.frame_labels(spans, tokens, log_probs.shape[1], getattr(model, "module", model).frame_stride).to(log_probs.device)
            valid = torch.arange(log_probs.shape[1], device=log_probs.device)[None, :] < out_lengths[:, None]
            loss = F.nll_loss(log_probs[valid], labels[valid], reduction="mean")
        else:
            loss = ctc_loss(log_probs, out_lengths, tokens)
        hyps = batch_greedy(log_probs.detach(), out_lengths)
        return loss, sum(h == t for h, t in zip(hyps, tokens))

    def validate(self, model) -> tuple[float, float] | None:
        if not self.val_waves:
            return None
        loss, accuracy, _, _ = score_clips(model, self.features, self.val_waves, [[t] for t in self.val_tokens])
        return loss, accuracy


def ctc_loss(log_probs: torch.Tensor, lengths: torch.Tensor, targets: list[list[int]], reduction: str = "mean") -> torch.Tensor:
    flat = torch.tensor([t for seq in targets for t in seq], dtype=torch.long)
    target_lengths = torch.tensor([len(seq) for seq in targets], dtype=torch.long)
    return F.ctc_loss(log_probs.transpose(0, 1).float(), flat, lengths.cpu(), target_lengths, blank=0,
                      reduction=reduction, zero_infinity=True)
