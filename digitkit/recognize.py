"""Speech to words with a loaded CTC model: silence trimmed, long files in bounded segments, word times in seconds."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch



@dataclass
class Transcription:
    path: str
    transcript: str
    confidence: float
    words: list[dict[str, Any]] = field(default_factory=list)
    warning: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = {"path": self.path, "transcript": self.transcript, "confidence": self.confidence, "words": self.words}
        if self.warning:
            out["warning"] = self.warning
        return out


class Recognizer:
    def __init__(self, ckpt: Any, device: torch.device, segment_seconds: float = 20.0):
        from digitkit.data.audio import LogMel

        self.net = ckpt.build_model(device)
        self.device = device
        self.vocab = ckpt.classes
        self.sample_rate = int(ckpt.input["sample_rate"])
        self.features = LogMel(self.sample_rate, int(ckpt.input["n_mels"]))
        self.frame_seconds = self.features.hop * self.net.frame_stride / self.sample_rate
        self.segment_seconds = segment_seconds

    @torch.inference_mode()
    def words(self, wave: torch.Tensor, offset: float = 0.0) -> list[dict[str, Any]]:
        from digitkit.ctc import greedy_decode
        from digitkit.data.audio import trim_silence
        from digitkit.data.sequences import FRAME_EDGE_S, frame_utterance

        speech, cut = trim_silence(wave, self.sample_rate)
        if len(speech) == 0:
            return []
        speech = frame_utterance(speech, self.sample_rate)
        feats, frames = self.features(speech[None], torch.tensor([len(speech)]))
        log_probs, lengths = self.net(feats.to(self.device), frames.to(self.device))
        start = offset + cut - FRAME_EDGE_S
        return [
            {"word": self.vocab[w.token - 1], "start": round(max(0.0, start + w.start_frame * self.frame_seconds), 3),
             "end": round(start + w.end_frame * self.frame_seconds, 3), "confidence": w.confidence}
            for w in greedy_decode(log_probs[0].float().cpu(), int(lengths[0]))
        ]

    def transcribe(self, path: str | os.PathLike) -> Transcription:
        from digitkit.data.audio import audio_blocks, segments

        words: list[dict[str, Any]] = []
        for segment, offset in segments(audio_blocks(path, self.sample_rate, self.segment_seconds), self.sample_rate):
            words += self.words(segment, offset)
        if not words:
            return Transcription(str(path), "", 0.0, [], warning="no speech recognized (silent or not speech)")
        confidence = sum(w["confidence"] for w in words) / len(words)
        return Transcription(str(path), " ".join(w["word"] for w in words), confidence, words)
