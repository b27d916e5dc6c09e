"""Audio in: soundfile reads WAV/FLAC/OGG/MP3 (8/16/24/32-bit PCM or float), PyAV (an optional extra) AAC/m4a and
the rest of FFmpeg's formats; all mixed to mono and resampled. For speech, a DC blocker then removes any constant
offset, an energy-based trim removes leading and trailing silence; log-mel features are computed on whole batches."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch

from digitkit.data.inputs import check_input_file
from digitkit.errors import InputError

SILENCE_FLOOR_DB = -70.0  # a clip whose loudest 20 ms frame is below this (dBFS) is silent (a quiet voice 20 dB
# below a normal recording level peaks near -55 dBFS; 16-bit silence with dither sits near -90)
TRIM_RANGE_DB = 35.0  # frames this far below the loudest one count as silence when trimming
SPEECH_ABOVE_NOISE_DB = 8.0  # speech stands this far above the background (the stream's endpointer, trimming in noise)
FLOOR_HELD_S = 0.3  # a recording's quietest level is its noise floor only if it holds it this long


def _soundfile():
    import soundfile

    return soundfile


# Rates a recording can have: a telephone's 8 kHz down to a thousand, studio 768 kHz up
MIN_RATE, MAX_RATE = 1_000, 768_000


def resample_rate(sample_rate: int, target_sr: int) -> int:
    """The source rate to resample from. A polyphase resampler's filter bank grows with the rates' reduced ratio:
    44,101 Hz to 8 kHz (coprime) needs gigabytes. Such a rate is taken to the nearest 100 Hz, which changes pitch
    and tempo by at most 0.6 % at 8 kHz (the speech models train with +-15 %)."""
    if sample_rate // math.gcd(sample_rate, target_sr) <= 1000:
        return sample_rate
    return max(100, round(sample_rate / 100) * 100)


def _mono_resampled(block, sample_rate: int, target_sr: int) -> torch.Tensor:
    import torchaudio.functional as AF

    wave = torch.from_numpy(block).float()
    if wave.ndim == 2:
        wave = wave.mean(dim=1)
    if sample_rate != target_sr:
        wave = AF.resample(wave, resample_rate(sample_rate, target_sr), target_sr)
    return wave


DC_CUTOFF_HZ = 20.0  # the log-mel features start at 20 Hz: below it a recording holds nothing the models use


class DCBlocker:
    """A first-order high-pass (y[n] = g (x[n] - x[n-1]) + r y[n-1], cut-off `DC_CUTOFF_HZ`, g = (1 + r) / 2 for a
    gain of 1 at the top of the band) whose state carries from one block of a recording to the next. A constant
    offset (cheap microphones and sound cards record one) is energy to every loudness measure and a strong low band
    to the features: a 1-s constant signal read as "7 6". A per-block mean would step at block edges; this filter
    is continuous across them. The state starts as if the recording had held its first 10 ms' mean before it began,
    so an offset present from the start leaves no transient."""

    def __init__(self, sample_rate: int, cutoff_hz: float = DC_CUTOFF_HZ):
        self.r = math.exp(-2 * math.pi * cutoff_hz / sample_rate)
        self.gain = (1 + self.r) / 2
        self.head = max(1, int(0.01 * sample_rate))
        self.memory = math.ceil(math.log(1e-9) / math.log(self.r))  # samples until the last block's state is gone
        self.x_prev: float | None = None
        self.y_prev = 0.0

    def __call__(self, block: torch.Tensor) -> torch.Tensor:
        import torchaudio.functional as AF

        if len(block) == 0:
            return block
        x = block.float()
        if self.x_prev is None:
            self.x_prev = float(x[: self.head].mean())
        diff = torch.empty_like(x)
        diff[0] = x[0] - self.x_prev
        torch.sub(x[1:], x[:-1], out=diff[1:])
        diff *= self.gain
        y = AF.lfilter(diff[None], x.new_tensor([1.0, -self.r]), x.new_tensor([1.0, 0.0]), clamp=False)[0]
        n = min(len(y), self.memory)  # the previous block's output decays into this one's start
        y[:n] += self.y_prev * torch.pow(self.r, torch.arange(1, n + 1, dtype=torch.float64)).float()
        self.x_prev, self.y_prev = float(x[-1]), float(y[-1])
        return y


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


READABLE = "WAV, FLAC, OGG/Vorbis, Opus, MP3, AIFF and the other formats libsndfile reads"
_AV_HINT = "for AAC/m4a (as phones record) pip install 'digitkit[m4a]', or convert with ffmpeg -i IN.m4a OUT.wav"


def _av():
    """PyAV (FFmpeg's decoders in a wheel), for AAC/m4a and the other formats libsndfile lacks; None if absent."""
    try:
        import av
    except ImportError:
        return None
    return av


def _av_blocks(path: str | os.PathLike, target_sr: int, block_seconds: float) -> Iterator[torch.Tensor] | None:
    """Mono float32 blocks at `target_sr` decoded by FFmpeg, or None when PyAV is absent or finds no audio."""
    av = _av()
    if av is None:
        return None
    try:
        container = av.open(str(path))
    except (av.FFmpegError, ValueError, OSError):
        return None
    if not container.streams.audio:
        container.close()
        return None

    def blocks() -> Iterator[torch.Tensor]:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=target_sr)
        pending, size, block, decoded_any = [], 0, max(1, int(block_seconds * target_sr)), False
        try:
            with container:
                for frame in container.decode(container.streams.audio[0]):
                    for out in resampler.resample(frame):
                        pending.append(torch.from_numpy(out.to_ndarray().reshape(-1).copy()))
                        size += len(pending[-1])
                    if size >= block:
                        yield _finite(torch.cat(pending), path)
                        pending, size, decoded_any = [], 0, True
                for out in resampler.resample(None):
                    pending.append(torch.from_numpy(out.to_ndarray().reshape(-1).copy()))
        except av.FFmpegError as exc:
            raise InputError(f"{path}: truncated or corrupt audio ({exc})") from None
        if pending:
            yield _finite(torch.cat(pending), path)
        elif not decoded_any:
            raise InputError(f"{path}: zero-length audio")

    return blocks()


def _finite(wave: torch.Tensor, path: Any) -> torch.Tensor:
    if not torch.isfinite(wave).all():  # float files can hold them; every later step would turn to NaN
        raise InputError(f"{path}: holds NaN or infinite samples, not usable audio")
    return wave


class NotAudio(InputError):
    """A file libsndfile cannot open at all (as opposed to one it opens and finds broken): FFmpeg may still read it."""


def audio_info(path: str | os.PathLike) -> tuple[int, int]:
    """(frames, sample rate), with one clear error for a file that is not usable audio."""
    sf = _soundfile()
    p = check_input_file(path, "audio")
    try:
        info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        why = str(exc).strip() or "unknown format"
        hint = "; through PyAV also AAC/m4a and FFmpeg's other formats" if _av() is not None else f"; {_AV_HINT}"
        raise NotAudio(f"{path}: not an audio file digitkit can read ({why}); it reads {READABLE}{hint}") from None
    if info.frames <= 0:
        raise InputError(f"{path}: zero-length audio")
    if not MIN_RATE <= info.samplerate <= MAX_RATE:
        raise InputError(f"{path}: sample rate {info.samplerate:,} Hz is outside the {MIN_RATE:,}-{MAX_RATE:,} Hz "
                         "digitkit reads")
    missing = _wav_shortfall(p)
    if missing:
        raise InputError(f"{path}: truncated audio ({missing:,} bytes of its data are missing)")
    return info.frames, info.samplerate


def read_audio(path: str | os.PathLike, target_sr: int) -> torch.Tensor:
    """The whole file as float32 mono at `target_sr` (for clips; long files go through `audio_blocks`)."""
    return torch.cat(list(audio_blocks(path, target_sr, block_seconds=3600.0)))


def without_offset(blocks: Iterable[torch.Tensor], sample_rate: int) -> Iterator[torch.Tensor]:
    """The blocks of one recording with its constant offset removed, the filter's state carried across them: what
    the speech front end measures and hears (`DCBlocker`)."""
    blocker = DCBlocker(sample_rate)
    for block in blocks:
        yield blocker(block)


def audio_blocks(path: str | os.PathLike, target_sr: int, block_seconds: float = 30.0) -> Iterator[torch.Tensor]:
    """Mono float32 blocks at `target_sr`, so an hours-long file is never all in memory."""
    sf = _soundfile()
    try:
        frames, rate = audio_info(path)
    except NotAudio:
        decoded = _av_blocks(path, target_sr, block_seconds)
        if decoded is None:
            raise
        yield from decoded
        return
    block = max(1, int(block_seconds * rate))
    try:
        with sf.SoundFile(str(path)) as f:
            read = 0
            while read < frames:
                data = f.read(min(block, frames - read), dtype="float32", always_2d=True)
                if len(data) == 0:
                    break
                read += len(data)
                yield _finite(_mono_resampled(data, rate, target_sr), path)
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


def trim_silence(wave: torch.Tensor, sample_rate: int, pad_s: float = 0.08,
                 above_floor_db: float | None = None) -> tuple[torch.Tensor, float]:
    """Cut leading/trailing silence -> (trimmed wave, seconds cut from the start); empty if all silent. Silence is
    `TRIM_RANGE_DB` below the loudest frame; with `above_floor_db`, also anything less than that far above the
    recording's noise floor (its quietest tenth of frames), so that steady noise around the speech is cut too
    (the loudest frames always stay). A floor counts only where the recording holds it (within 3 dB) for
    `FLOOR_HELD_S`: in a clip cut close around its word, as FSDD's are (0.02-0.35 s held; a word in steady noise
    holds its floor for seconds), the quietest frames are the word's own edges, and cutting there cost the `fsdd`
    model 2.7 points on its clean test split."""
    db = frame_db(wave, sample_rate)
    peak = float(db.max())
    if peak < SILENCE_FLOOR_DB:
        return wave[:0], 0.0
    threshold = peak - TRIM_RANGE_DB
    if above_floor_db is not None:
        floor = float(db.quantile(0.1))
        held_s = int((db < floor + 3.0).sum()) * 0.01  # frames hop 10 ms
        if held_s >= FLOOR_HELD_S:
            threshold = max(threshold, min(floor + above_floor_db, peak - 3.0))
    active = torch.nonzero(db > threshold).flatten()
    hop = max(1, int(0.01 * sample_rate))
    pad = int(pad_s * sample_rate)
    start = max(0, int(active[0]) * hop - pad)
    end = min(len(wave), (int(active[-1]) + 2) * hop + pad)
    return wave[start:end], start / sample_rate


BACKGROUND_SHARE = 0.1  # the quietest share of a recording's frames taken as its background


def background_noise(recording: torch.Tensor, n: int, seed: int = 0, n_fft: int = 256) -> torch.Tensor:
    """`n` samples of noise with the spectrum and level of `recording`'s background: the mean power spectrum of its
    quietest frames, given to white noise (comfort noise, as telephone codecs make). Where a recording is too short
    for the context a model expects, this continues it as it would have gone on: digital silence after a noisy
    recording is an edge no training sequence has, and such edges read as words."""
    if n <= 0:
        return torch.zeros(0)
    hop = n_fft // 2
    window = torch.hann_window(n_fft)
    x = torch.nn.functional.pad(recording, (0, max(0, n_fft - len(recording))))
    power = torch.stft(x, n_fft, hop, window=window, center=False, return_complex=True).abs().pow(2)  # [bins, frames]
    energy = power.mean(0)
    quiet = energy.argsort()[: max(1, int(len(energy) * BACKGROUND_SHARE))]
    shape = power[:, quiet].mean(1).sqrt()
    white = torch.randn(n + 2 * n_fft, generator=torch.Generator().manual_seed(seed))
    spec = torch.stft(white, n_fft, hop, window=window, return_complex=True)
    noise = torch.istft(spec * shape[:, None], n_fft, hop, window=window, length=len(white))[n_fft : n_fft + n]
    level = float(energy[quiet].mean()) / float(window.pow(2).sum())  # the quiet frames' power per sample
    return noise * math.sqrt(level / (float(noise.pow(2).mean()) + 1e-20))


class LogMel:
    """Batched log-mel features, normalized per utterance over its real (unpadded) frames: each band's mean taken
    off, and then either each band scaled to unit variance ("cmvn", the older checkpoints') or all bands scaled by
    one deviation ("cmn"). Per-band scaling makes every band of a short word swing alike, erasing which bands the
    vowel is strong in: what tells "four" from "two" once noise has covered the consonant."""

    def __init__(self, sample_rate: int, n_mels: int = 40, norm: str = "cmvn"):
        import torchaudio.transforms as T

        from digitkit.config import FEATURE_NORMS

        if norm not in FEATURE_NORMS:
            raise ValueError(f"feature norm {norm!r} is none of {FEATURE_NORMS}")
        win = round(0.025 * sample_rate)
        self.hop = round(0.010 * sample_rate)
        self.sample_rate = sample_rate
        self.norm = norm
        self.mel = T.MelSpectrogram(
            sample_rate=sample_rate, n_fft=1 << math.ceil(math.log2(win)), win_length=win, hop_length=self.hop,
            f_min=20.0, f_max=sample_rate / 2, n_mels=n_mels, center=True,
        )

    @classmethod
    def of(cls, ckpt: Any) -> "LogMel":
        """The features a speech checkpoint was trained on (one from before the option: what its runs used)."""
        from digitkit.config import STORED_BEFORE

        norm = ckpt.input.get("feature_norm", STORED_BEFORE["feature_norm"])
        return cls(int(ckpt.input["sample_rate"]), int(ckpt.input["n_mels"]), norm)

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
            squares = (feats - mean).pow(2) * mask
            if self.norm == "cmvn":
                var = squares.sum(1, keepdim=True) / count
            else:
                var = squares.sum((1, 2), keepdim=True) / (count * feats.shape[2])
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
