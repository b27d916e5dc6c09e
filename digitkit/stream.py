"""Live transcription of one WAV stream (a RIFF header, then PCM, as `arecord -f S16_LE -r 16000 -t wav` writes it):
a voice activity detector with an adaptive noise floor cuts the stream into spoken strings, and each string is
transcribed as soon as the pause after it ends. Memory is bounded by the longest string (`max_seconds`), however
long the stream runs."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import torch

from digitkit.data.audio import SPEECH_ABOVE_NOISE_DB, TRIM_RANGE_DB
from digitkit.errors import InputError

FRAME_S = 0.01
READ_FRAMES = 5  # frames read at a time: a pause is noticed at most 0.05 s after it has lasted long enough


@dataclass(frozen=True)
class WavFormat:
    sample_rate: int
    channels: int
    bits: int
    is_float: bool


def read_header(stream: BinaryIO) -> WavFormat:
    """The format chunk of a streamed WAV; the data chunk's size is ignored (a live stream does not know it)."""
    head = stream.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise InputError("--stream reads a WAV stream on stdin (RIFF/WAVE header, then PCM), e.g. "
                         "`arecord -f S16_LE -r 16000 -t wav | digitkit transcribe --stream`")
    fmt = None
    while True:
        chunk = stream.read(8)
        if len(chunk) < 8:
            raise InputError("the WAV stream ended before its data chunk")
        name, size = struct.unpack("<4sI", chunk)
        if name == b"data":
            if fmt is None:
                raise InputError("the WAV stream has no format chunk before its data")
            return fmt
        body = stream.read(size + (size & 1))
        if name == b"fmt ":
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the real tag starts the sub-format GUID
                tag = struct.unpack("<H", body[24:26])[0]
            if tag not in (1, 3) or (tag == 1 and bits not in (8, 16, 24, 32)) or (tag == 3 and bits not in (32, 64)):
                raise InputError(f"unsupported WAV stream: format {tag}, {bits} bits (use PCM 8/16/24/32-bit or float)")
            if not 1 <= channels <= 64 or not 1000 <= rate <= 384000:
                raise InputError(f"unusable WAV stream header: {channels} channels at {rate} Hz")
            fmt = WavFormat(rate, channels, bits, tag == 3)


def decode(raw: bytes, fmt: WavFormat) -> torch.Tensor:
    """Interleaved PCM bytes -> mono float32 in [-1, 1]."""
    import numpy as np

    if fmt.is_float:
        data = np.frombuffer(raw, dtype="<f4" if fmt.bits == 32 else "<f8").astype(np.float32)
    elif fmt.bits == 8:
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128) / 128
    elif fmt.bits == 24:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        data = ((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8).astype(np.float32) / 2 ** 23
    else:
        dtype = "<i2" if fmt.bits == 16 else "<i4"
        data = np.frombuffer(raw, dtype=dtype).astype(np.float32) / 2 ** (fmt.bits - 1)
    data = np.nan_to_num(data, nan=0.0, posinf=1.0, neginf=-1.0)
    return torch.from_numpy(data.reshape(-1, fmt.channels).mean(axis=1).copy())


class Endpointer:
    """Speech/pause decisions per 10 ms frame against a noise floor: the level of the quietest tenth of the last
    `window_s` of frames (minimum statistics, as noise estimators for speech enhancement keep it, with a quantile so
    that a short dip does not count as the background). A floor that dropped at once to any quieter frame and crept
    back up took a background that rises (a recording's quiet edge, then a fan) for speech until it caught up:
    FSDD test digits spliced into a stream between stretches of faint noise came out as 9 strings for 60 said
    (`bench/speech_wild.py`, stream). A window of seconds forgets a quiet moment once it has passed, and still holds
    the floor through fluent speech, whose stop closures and gaps fall near the background many times a second."""

    def __init__(self, above_db: float = SPEECH_ABOVE_NOISE_DB, window_s: float = 2.0, quantile: float = 0.1):
        from collections import deque

        self.above = above_db
        self.quantile = quantile
        self.recent: deque[float] = deque(maxlen=max(1, round(window_s / FRAME_S)))

    def __call__(self, db: float) -> bool:
        self.recent.append(db)
        floor = sorted(self.recent)[int(self.quantile * (len(self.recent) - 1))]
        return db > floor + self.above and db > -65.0


@dataclass
class Heard:
    start: float  # seconds from the start of the stream
    end: float
    transcription: object  # recognize.Transcription

    def to_dict(self) -> dict:
        t = self.transcription
        return {"start": round(self.start, 2), "end": round(self.end, 2), "transcript": t.transcript,
                "confidence": t.confidence, "words": t.words}

    @property
    def warning(self) -> str:
        return self.transcription.warning

    @property
    def path(self) -> str:
        return f"{self.start:.2f}-{self.end:.2f} s"


def segments(stream: BinaryIO, pause_s: float = 0.35, max_seconds: float = 20.0, pre_roll_s: float = 0.2,
             min_speech_s: float = 0.1) -> Iterator[tuple[float, float, torch.Tensor, int]]:
    """(start, end, audio, sample rate) per spoken string, as soon as `pause_s` of quiet follows it."""
    from digitkit.data.audio import DCBlocker, frame_db

    fmt = read_header(stream)
    blocker = DCBlocker(fmt.sample_rate)
    frame = max(1, int(fmt.sample_rate * FRAME_S))
    width = fmt.channels * fmt.bits // 8 * frame  # bytes per 10 ms frame
    vad = Endpointer()
    frames_seen = 0
    pre: list[torch.Tensor] = []
    speech: list[torch.Tensor] = []
    voiced = quiet = 0
    peak = 0.0  # the current string's loudest frame, dB
    while True:
        raw = stream.read(width * READ_FRAMES)
        usable = len(raw) - len(raw) % width
        if usable == 0:
            break
        wave = blocker(decode(raw[:usable], fmt))
        db = frame_db(wave, fmt.sample_rate, frame_s=FRAME_S, hop_s=FRAME_S)[: usable // width]
        for i, level in enumerate(db.tolist()):
            piece = wave[i * frame : (i + 1) * frame]
            frames_seen += 1
            active = vad(level)
            if not speech:
                pre = (pre + [piece])[-int(pre_roll_s / FRAME_S):]
                if active:
                    speech, voiced, quiet, peak = pre, 1, 0, level
                    pre = []
                continue
            speech.append(piece)
            # as far below the string's loudest frame as the recognizer's trim cuts is a pause, whatever the floor
            # says: quiet moments inside a string must not hold it open through louder noise after it
            peak = max(peak, level)
            active = active and level > peak - TRIM_RANGE_DB
            voiced, quiet = (voiced + 1, 0) if active else (voiced, quiet + 1)
            if quiet * FRAME_S >= pause_s or len(speech) * FRAME_S >= max_seconds:
                end = frames_seen * FRAME_S
                if voiced * FRAME_S >= min_speech_s:
                    yield end - len(speech) * FRAME_S, end - quiet * FRAME_S, torch.cat(speech), fmt.sample_rate
                speech, voiced, quiet = [], 0, 0
        if len(raw) < width * READ_FRAMES:
            break
    if speech and voiced * FRAME_S >= min_speech_s:
        end = frames_seen * FRAME_S
        yield end - len(speech) * FRAME_S, end - quiet * FRAME_S, torch.cat(speech), fmt.sample_rate


def transcribe_stream(recognizer, stream: BinaryIO, pause_s: float = 0.35) -> Iterator[Heard]:
    """One `Heard` per spoken string of a live WAV stream, in order; silence and noise bursts print nothing."""
    import torchaudio.functional as AF

    from digitkit.data.audio import resample_rate

    for start, end, audio, rate in segments(stream, pause_s):
        if rate != recognizer.sample_rate:
            audio = AF.resample(audio, resample_rate(rate, recognizer.sample_rate), recognizer.sample_rate)
        words, other = recognizer.words(audio, offset=start)
        if words:
            yield Heard(start, max(end, words[-1]["end"]), recognizer.verdict("-", words, other))
