"""Speech to words with a loaded CTC model: silence trimmed, long files in bounded segments, word times in seconds
from the audio around each CTC spike, and a verdict: a clip is reported as not recognised (transcript None) when
the model hears other speech (its filler token), no word at all, or a word below `min_confidence`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch

# Lowest per-word confidence of an accepted transcript. A word's confidence is the mean posterior of its token
# over the frames that emitted it. Measured with the shipped digits model: at 0.4, 95 % of the AN4 strings of unseen
# speakers (fold 1) and 97 % of FSDD test digits pass, while 60 % of espeak-ng sentences fall below; at 0.6 only
# 71 % of those AN4 strings would pass. Other speech is mostly caught by the filler token instead (OTHER_SPEECH).
DEFAULT_MIN_CONFIDENCE = 0.4
# A frame whose filler token (other speech) is more probable than this rejects the clip, even where the greedy
# path does not choose it: measured on a `digits` model, no AN4 string and 1 % of FSDD test digits pass 0.2,
# against 88 % of Speech Commands words that are not digits.
OTHER_SPEECH = 0.25
NOT_RECOGNISED = "?"  # the TSV transcript of a clip that was not recognised


@dataclass
class Transcription:
    path: str
    transcript: str | None  # None: not recognised (see `warning`)
    confidence: float
    words: list[dict[str, Any]] = field(default_factory=list)
    warning: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = {"path": self.path, "transcript": self.transcript, "confidence": self.confidence, "words": self.words}
        if self.warning:
            out["warning"] = self.warning
        return out

    @property
    def recognised(self) -> bool:
        return self.transcript is not None


def word_bounds(db: torch.Tensor, centres: list[float], gap_frames: int = 3) -> list[tuple[int, int]]:
    """Each word's (start, end) 10 ms frame: the run of frames above the noise floor around its CTC spike
    (`centres`, in 10 ms frames), bridging dips shorter than `gap_frames`, never past halfway to a neighbour."""
    floor = float(torch.quantile(db, 0.1))
    peak = float(db.max())
    active = (db > floor + max(6.0, 0.25 * (peak - floor))).tolist()
    n = len(active)
    bounds = []
    for i, c in enumerate(centres):
        lo = 0 if i == 0 else int((centres[i - 1] + c) / 2) + 1
        hi = n if i == len(centres) - 1 else int((c + centres[i + 1]) / 2)
        centre = min(max(int(c), lo), max(lo, hi - 1))
        if not any(active[lo:hi]):
            bounds.append((centre, min(n, centre + 1)))
            continue
        if not active[centre]:  # the spike fell in a dip: start from the nearest active frame
            centre = min((j for j in range(lo, hi) if active[j]), key=lambda j: abs(j - centre))
        start, quiet = centre, 0
        for j in range(centre - 1, lo - 1, -1):
            quiet = 0 if active[j] else quiet + 1
            if quiet >= gap_frames:
                break
            if active[j]:
                start = j
        end, quiet = centre + 1, 0
        for j in range(centre + 1, hi):
            quiet = 0 if active[j] else quiet + 1
            if quiet >= gap_frames:
                break
            if active[j]:
                end = j + 1
        bounds.append((start, end))
    return bounds


class Recognizer:
    def __init__(self, ckpt: Any, device: torch.device, segment_seconds: float = 20.0,
                 min_confidence: float = DEFAULT_MIN_CONFIDENCE):
        from digitkit.data.audio import LogMel
        from digitkit.models.registry import make_config
        from digitkit.models.speech import frame_stride

        self.net = ckpt.build_model(device)
        self.device = device
        self.vocab = ckpt.classes
        self.filler = len(self.vocab) + 1 if ckpt.input.get("filler") else None
        self.sample_rate = int(ckpt.input["sample_rate"])
        self.level_db = ckpt.input.get("level_db")  # set by models trained on level-normalised audio in context
        self.features = LogMel.of(ckpt)
        self.stride = frame_stride(make_config(ckpt.model_name, ckpt.model_config)) * self.features.hop  # samples per output frame
        self.segment_seconds = segment_seconds
        self.min_confidence = min_confidence

    def utterance(self, wave: torch.Tensor) -> tuple[torch.Tensor, float]:
        """The speech in `wave` framed as the model was trained to hear it -> (audio, its start in `wave`, s)."""
        from digitkit.data.sequences import present

        return present(wave, self.sample_rate, self.level_db)

    @torch.inference_mode()
    def words(self, wave: torch.Tensor, offset: float = 0.0) -> tuple[list[dict[str, Any]], float]:
        """(the words heard in `wave`, other speech as word None, with start and end in seconds from `offset`;
        the highest probability of other speech in any frame, 0 for a model without a filler token)."""
        from digitkit.ctc import greedy_decode
        from digitkit.data.audio import frame_db

        speech, cut = self.utterance(wave)
        if len(speech) == 0:
            return [], 0.0
        feats, frames = self.features(speech[None], torch.tensor([len(speech)]))
        log_probs, lengths = self.net(feats.to(self.device), frames.to(self.device))
        log_probs = log_probs[0, : int(lengths[0])].float().cpu()
        decoded = greedy_decode(log_probs)
        other = float(log_probs[:, self.filler].exp().max()) if self.filler is not None else 0.0
        hop = max(1, int(0.01 * self.sample_rate))
        per_output = self.stride / hop  # 10 ms frames per output frame
        centres = [(w.start_frame + w.end_frame) / 2 * per_output for w in decoded]
        bounds = word_bounds(frame_db(speech, self.sample_rate), centres)
        start = offset + cut
        return [
            {"word": None if w.token == self.filler else self.vocab[w.token - 1],
             "start": round(max(0.0, start + a * 0.01), 3), "end": round(max(0.0, start + b * 0.01), 3),
             "confidence": w.confidence}
            for w, (a, b) in zip(decoded, bounds)
        ], other

    def verdict(self, path: str, words: list[dict[str, Any]], other: float = 0.0) -> Transcription:
        """Accept the words only when all are words of the vocabulary, each at least `min_confidence`, and no frame
        leans towards other speech (its probability above OTHER_SPEECH)."""
        if not words:
            return Transcription(path, None, 0.0, [], warning="no speech recognized (silent or not speech)")
        heard = [w for w in words if w["word"] is not None]
        confidence = sum(w["confidence"] for w in heard) / len(heard) if heard else 0.0
        if len(heard) < len(words) or other > OTHER_SPEECH:
            return Transcription(path, None, confidence, words, warning="not recognised: speech other than digits")
        low = min(w["confidence"] for w in words)
        if low < self.min_confidence:
            return Transcription(path, None, confidence, words,
                                 warning=f"not recognised: a word's confidence {low:.2f} is below {self.min_confidence}")
        return Transcription(path, " ".join(w["word"] for w in words), confidence, words)

    def transcribe(self, path: str | os.PathLike) -> Transcription:
        from digitkit.data.audio import audio_blocks, segments, without_offset

        words: list[dict[str, Any]] = []
        other = 0.0
        blocks = without_offset(audio_blocks(path, self.sample_rate, self.segment_seconds), self.sample_rate)
        for segment, offset in segments(blocks, self.sample_rate):
            found, peak = self.words(segment, offset)
            words, other = words + found, max(other, peak)
        return self.verdict(str(path), words, other)
