"""Reading a CTC model's output: greedy decoding into words with frame spans and confidences, and word error rate."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class DecodedWord:
    token: int
    start_frame: int
    end_frame: int  # exclusive
    confidence: float


def greedy_decode(log_probs: torch.Tensor, length: int | None = None) -> list[DecodedWord]:
    """Best token per frame, repeats collapsed, blanks (token 0) dropped; a word's confidence is the mean
    probability of its token over the frames that emitted it."""
    probs = log_probs[: length if length is not None else len(log_probs)].exp()
    best_p, best = probs.max(dim=-1)
    words: list[DecodedWord] = []
    previous = 0
    for t, (token, p) in enumerate(zip(best.tolist(), best_p.tolist())):
        if token != 0 and token == previous and words:
            w = words[-1]
            w.confidence = (w.confidence * (w.end_frame - w.start_frame) + p) / (w.end_frame - w.start_frame + 1)
            w.end_frame = t + 1
        elif token != 0:
            words.append(DecodedWord(token, t, t + 1, p))
        previous = token
    return words


def batch_greedy(log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    """Token sequences for a batch [B, T, V], as greedy_decode reads them: the best token per frame is copied to
    the host once for the whole batch (one wait for a GPU, not one per utterance), then repeats and blanks go."""
    best = log_probs.argmax(-1).cpu().tolist()
    out = []
    for row, n in zip(best, lengths.tolist()):
        tokens, previous = [], 0
        for token in row[:n]:
            if token != 0 and token != previous:
                tokens.append(token)
            previous = token
        out.append(tokens)
    return out


def edit_distance(ref: list, hyp: list) -> int:
    """Word-level Levenshtein distance (substitutions, insertions, deletions)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        diag, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diag + (r != h))
    return row[-1]


def word_error_rate(refs: list[list], hyps: list[list]) -> float:
    words = sum(len(r) for r in refs)
    return sum(edit_distance(r, h) for r, h in zip(refs, hyps)) / max(words, 1)
