"""Connected speech made from real single-word recordings: joined with random short gaps, levels and a faint
noise floor, so a model learns to transcribe strings of words ("4 0 7 1 2 2 3") as well as single words."""

from __future__ import annotations

import torch


def join_words(
    waves: list[torch.Tensor],
    sample_rate: int,
    generator: torch.Generator | None = None,
    gap_s: tuple[float, float] = (0.05, 0.35),
    gain: tuple[float, float] = (0.6, 1.4),
    edge_s: tuple[float, float] = (0.0, 0.2),
    spans: list[tuple[int, int]] | None = None,
) -> torch.Tensor:
    """One waveform: silence, word, gap, word, ..., silence; every random choice drawn from `generator`.
    If `spans` is given, each word's (start, end) sample is appended to it: the alignment is known exactly."""

    def uniform(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=generator))

    def silence(seconds: float) -> torch.Tensor:
        return torch.zeros(int(seconds * sample_rate))

    parts = [silence(uniform(*edge_s))]
    at = len(parts[0])
    for i, wave in enumerate(waves):
        if i:
            parts.append(silence(uniform(*gap_s)))
            at += len(parts[-1])
        parts.append(wave * uniform(*gain))
        if spans is not None:
            spans.append((at, at + len(wave)))
        at += len(wave)
    parts.append(silence(uniform(*edge_s)))
    out = torch.cat(parts)
    noise_level = 10 ** (uniform(-70, -50) / 20)  # a faint floor, as real recordings have
    return out + noise_level * torch.randn(len(out), generator=generator)


def sample_lengths(count: int, max_words: int, p_single: float, generator: torch.Generator | None = None) -> list[int]:
    """How many words each of `count` training sequences gets: one with probability `p_single`, else 2..max_words."""
    single = torch.rand(count, generator=generator) < p_single
    many = torch.randint(2, max(2, max_words) + 1, (count,), generator=generator)
    return torch.where(single, torch.ones_like(many), many).tolist()


FRAME_EDGE_S = 0.15  # silence put around a lone utterance, as the training sequences always have


def frame_utterance(wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """A trimmed utterance framed like a training sequence: silent edges and the same faint noise floor, drawn
    from a fixed seed so the same clip always gives the same answer. (Bare clips score clearly worse.)"""
    return join_words([wave], sample_rate, generator=torch.Generator().manual_seed(0), gain=(1.0, 1.0),
                      edge_s=(FRAME_EDGE_S, FRAME_EDGE_S))
