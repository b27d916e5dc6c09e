"""Audio in: soundfile reads any WAV/FLAC (8/16/24/32-bit PCM or float), mixed to mono and resampled;
an energy-based trim removes leading and trailing silence; log-mel features are computed on whole batches."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from digitkit.data.inputs import check_input_file
from digitkit.errors import InputError

SILENCE_FLOOR_DB = -55.0  # a clip whose loudest 20 ms frame is below this (dBFS) is silent
TRIM_RANGE_DB = 35.0  # frames this far below the loudest one count as silence when trimming


def _soundfile():
    import soundfile

    return soundfile


def _mono_resampled(block, sample_rate: int, target_sr: int) -> torch.Tensor:
    import torchaudio.functional as AF

    wave = torch.from_numpy(block).float()
    if wave.ndim == 2:
        wave = wave.mean(dim=1)
    if sample_rate != target_sr:
        wave = AF.resample(wave, sample_rate, target_sr)
    return wave


def _wav_shortfall(path: Path) -> int:
    """Bytes a RIFF/WAVE file's data chunk promises but does not hold (libsndfile quietly reads what is there)."""
    import struct

    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return 0
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                if chunk_size in (0, 0xFFFFFFFF):  # streamed files leave the size unset
                    return 0
                return max(0, pos + 8 + chunk_size - size)
            pos += 8 + chunk_size + (chunk_size & 1)
    return 0


def audio_info(path: str | os.PathLike) -> tuple[int, int]:
    """(frames, sample rate), with one clear error for a file that is not usable audio."""
    sf = _soundfile()
    p = check_input_file(path, "audio")
    try:
        info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise InputError(f"{path}: not an audio file soundfile can read ({str(exc).strip() or 'unknown format'})") from None
    if info.frames <= 0:
        raise InputError(f"{path}: zero-length audio")
    missing = _wav_shortfall(p)
    if missing:
        raise InputError(f"{path}: truncated audio ({missing:,} bytes of its data are missing)")
    return info.frames, info.samplerate


def read_audio(path: str | os.PathLike, target_sr: int) -> torch.Tensor:
    """The whole file as float32 mono at `target_sr` (for clips; long files go through `audio_blocks`)."""
    return torch.cat(list(audio_blocks(path, target_sr, block_seconds=3600.0)))


def audio_blocks(path: str | os.PathLike, target_sr: int, block_seconds: float = 30.0) -> Iterator[torch.Tensor]:
    """Mono float32 blocks at `target_sr`, so an hours-long file is never all in memory."""
    sf = _soundfile()
    frames, rate = audio_info(path)
    block = max(1, int(block_seconds * rate))
    try:
        with sf.SoundFile(str(path)) as f:
            read = 0
            while read < frames:
                data = f.read(min(block, frames - read), dtype="float32", always_2d=True)
                if len(data) == 0:
                    break
                read += len(data)
                if not np.isfinite(data).all():  # float WAVs can hold them; every later step would turn to NaN
                    raise InputError(f"{path}: holds NaN or infinite samples, not usable audio")
                yield _mono_resampled(data, rate, target_sr)
            if read < frames:
                raise InputError(f"{path}: truncated audio (header says {frames} frames, found {read})")
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise InputError(f"{path}: truncated or corrupt audio ({str(exc).strip()})") from None


def frame_db(wave: torch.Tensor, sample_rate: int, frame_s: float = 0.02, hop_s: float = 0.01) -> torch.Tensor:
    """Loudness of each 20 ms frame in dBFS."""
    frame, hop = max(1, int(frame_s * sample_rate)), max(1, int(hop_s * sample_rate))
    if len(wave) < frame:
        wave = torch.nn.functional.pad(wave, (0, frame - len(wave)))
    frames = wave.unfold(0, frame, hop)
    return 10 * torch.log10(frames.pow(2).mean(dim=1) + 1e-10)


def trim_silence(wave: torch.Tensor, sample_rate: int, pad_s: float = 0.08) -> tuple[torch.Tensor, float]:
    """Cut leading/trailing silence -> (trimmed wave, seconds cut from the start); empty if all silent."""
    db = frame_db(wave, sample_rate)
    peak = float(db.max())
    if peak < SILENCE_FLOOR_DB:
        return wave[:0], 0.0
    active = torch.nonzero(db > peak - TRIM_RANGE_DB).flatten()
    hop = max(1, int(0.01 * sample_rate))
    pad = int(pad_s * sample_rate)
    start = max(0, int(active[0]) * hop - pad)
    end = min(len(wave), (int(active[-1]) + 2) * hop + pad)
    return wave[start:end], start / sample_rate


class LogMel:
    """Batched log-mel features, normalized per utterance over its real (unpadded) frames."""

    def __init__(self, sample_rate: int, n_mels: int = 40):
        import torchaudio.transforms as T

        win = round(0.025 * sample_rate)
        self.hop = round(0.010 * sample_rate)
        self.sample_rate = sample_rate
        self.mel = T.MelSpectrogram(
            sample_rate=sample_rate, n_fft=1 << math.ceil(math.log2(win)), win_length=win, hop_length=self.hop,
            f_min=20.0, f_max=sample_rate / 2, n_mels=n_mels, center=True,
        )

    def frames(self, samples: torch.Tensor) -> torch.Tensor:
        return samples // self.hop + 1

    def __call__(self, waves: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, samples] + lengths -> ([B, frames, n_mels], frame lengths), computed where `waves` are."""
        with torch.no_grad():
            self.mel = self.mel.to(waves.device)
            lengths = lengths.to(waves.device)
            feats = torch.log(self.mel(waves) + 1e-6).transpose(1, 2)  # [B, frames, mels]
            n = self.frames(lengths).clamp(max=feats.shape[1])
            mask = (torch.arange(feats.shape[1], device=waves.device)[None, :] < n[:, None]).unsqueeze(-1).float()
            count = mask.sum(1, keepdim=True).clamp(min=1)
            mean = (feats * mask).sum(1, keepdim=True) / count
            var = ((feats - mean).pow(2) * mask).sum(1, keepdim=True) / count
            feats = (feats - mean) / (var.sqrt() + 1e-5) * mask
        return feats, n


def pad_batch(waves: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(w) for w in waves])
    out = torch.zeros(len(waves), int(lengths.max()) if len(waves) else 0)
    for i, w in enumerate(waves):
        out[i, : len(w)] = w
    return out, lengths


def _quietest_point(db: torch.Tensor) -> int:
    """The middle of the longest run of frames within 1 dB of the quietest: mid-pause, not against a word's edge."""
    quiet = (db <= db.min() + 1.0).tolist() + [False]
    best_len, best_mid, start = 0, int(torch.argmin(db)), None
    for i, q in enumerate(quiet):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if i - start > best_len:
                best_len, best_mid = i - start, (start + i) // 2
            start = None
    return best_mid


def segments(blocks: Iterator[torch.Tensor], sample_rate: int, tail_s: float = 2.0) -> Iterator[tuple[torch.Tensor, float]]:
    """Re-cut a stream of blocks at the quietest 10 ms within the last `tail_s` of each, so that no word is split
    across segments -> (segment, start time in seconds). Memory stays bounded by two blocks."""
    carry = torch.zeros(0)
    offset = 0.0
    pending = next(blocks, None)
    while pending is not None:
        following = next(blocks, None)
        buffer = torch.cat([carry, pending])
        if following is None:
            yield buffer, offset
            return
        tail = min(len(buffer), int(tail_s * sample_rate))
        db = frame_db(buffer[len(buffer) - tail :], sample_rate, frame_s=0.01, hop_s=0.01)
        cut = len(buffer) - tail + _quietest_point(db) * max(1, int(0.01 * sample_rate))
        yield buffer[:cut], offset
        offset += cut / sample_rate
        carry, pending = buffer[cut:], following
