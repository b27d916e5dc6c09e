"""Waveform augmentation for training speech models on the recordings people make, not the ones in the corpus:
speed perturbation (as Kaldi recipes do, 0.85-1.15), gain with clipping, additive noise at a random SNR (white,
pink, or babble mixed from other training clips), telephone band limiting, a synthetic room reverb, and random
silence. Every draw comes from the generator passed in, so an epoch's augmentation depends only on its seed."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SPEED_FACTORS = (0.85, 0.9, 0.95, 1.0, 1.0, 1.05, 1.1, 1.15)  # 1.0 twice: untouched tempo stays the most common


def uniform(g: torch.Generator | None, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def chance(g: torch.Generator | None, p: float) -> bool:
    return float(torch.rand((), generator=g)) < p


def speed(wave: torch.Tensor, factor: float, sample_rate: int) -> torch.Tensor:
    """Play `factor` times as fast (pitch moves with it, like tape): a resampling from sample_rate * factor."""
    import torchaudio.functional as AF

    if factor == 1.0 or len(wave) < 2:
        return wave
    return AF.resample(wave, int(round(sample_rate * factor / 100)) * 100, sample_rate)


def random_speed(wave: torch.Tensor, sample_rate: int, g: torch.Generator | None) -> torch.Tensor:
    return speed(wave, SPEED_FACTORS[int(torch.randint(len(SPEED_FACTORS), (), generator=g))], sample_rate)


def power(wave: torch.Tensor) -> float:
    """Mean power of the louder half of 20 ms frames: the speech, not the pauses around it."""
    n = max(1, len(wave) // 160 * 160)
    frames = torch.nn.functional.pad(wave, (0, max(0, n - len(wave))))[:n].view(-1, min(n, 160)).pow(2).mean(1)
    top = frames.sort(descending=True).values[: max(1, len(frames) // 2)]
    return float(top.mean()) + 1e-12


def fast_size(n: int) -> int:
    """A length whose FFT is quick: a clip's own length can be a large prime, tens of times slower."""
    return 1 << max(0, (n - 1).bit_length())


def white_noise(n: int, g: torch.Generator | None) -> torch.Tensor:
    return torch.randn(n, generator=g)


def pink_noise(n: int, g: torch.Generator | None) -> torch.Tensor:
    """1/f power: white noise shaped in the frequency domain."""
    size = fast_size(n)
    spectrum = torch.fft.rfft(torch.randn(size, generator=g))
    f = torch.arange(len(spectrum), dtype=torch.float32).clamp(min=1)
    return torch.fft.irfft(spectrum / f.sqrt(), size)[:n]


def babble(n: int, pool: list[torch.Tensor], g: torch.Generator | None, voices: tuple[int, int] = (4, 7)) -> torch.Tensor:
    """Several other recordings talking at once, each looped to length `n` from a random point."""
    out = torch.zeros(n)
    for _ in range(int(torch.randint(voices[0], voices[1] + 1, (), generator=g))):
        clip = pool[int(torch.randint(len(pool), (), generator=g))]
        clip = clip / (clip.abs().max() + 1e-6)
        reps = math.ceil((n + len(clip)) / max(1, len(clip)))
        shift = int(torch.randint(len(clip), (), generator=g))
        out += clip.repeat(reps)[shift : shift + n]
    return out


def add_noise(wave: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    scale = math.sqrt(power(wave) / (float(noise.pow(2).mean()) + 1e-12) / 10 ** (snr_db / 10))
    return wave + scale * noise


def band_limit(wave: torch.Tensor, sample_rate: int, low: float = 300.0, high: float = 3400.0) -> torch.Tensor:
    """A telephone channel: only `low`-`high` Hz pass (a soft-edged mask in the frequency domain)."""
    size = fast_size(len(wave))
    spectrum = torch.fft.rfft(wave, size)
    hz = torch.linspace(0, sample_rate / 2, len(spectrum))
    mask = torch.sigmoid((hz - low) / 40) * torch.sigmoid((high - hz) / 80)
    return torch.fft.irfft(spectrum * mask, size)[: len(wave)]


def reverb(wave: torch.Tensor, sample_rate: int, rt60: float, g: torch.Generator | None, wet: float = 0.5) -> torch.Tensor:
    """A room: the direct sound plus an exponentially decaying noise tail that falls 60 dB in `rt60` seconds."""
    n = max(2, int(rt60 * sample_rate))
    t = torch.arange(n, dtype=torch.float32) / sample_rate
    impulse = torch.randn(n, generator=g) * torch.exp(-6.9 * t / rt60)
    impulse[0] = 0.0
    impulse *= wet / (impulse.norm() + 1e-9)
    impulse[0] = 1.0
    size = fast_size(len(wave) + n)
    out = torch.fft.irfft(torch.fft.rfft(wave, size) * torch.fft.rfft(impulse, size), size)[: len(wave)]
    return out * (wave.abs().max() / (out.abs().max() + 1e-9))


@dataclass(frozen=True)
class Augment:
    """How often and how much; the defaults are the training recipe of the `digits` recognizer."""

    p_noise: float = 0.7
    snr_db: tuple[float, float] = (0.0, 30.0)
    p_band: float = 0.25
    p_reverb: float = 0.25
    rt60: tuple[float, float] = (0.15, 0.7)
    gain_db: tuple[float, float] = (-20.0, 20.0)
    p_clip: float = 0.1  # of gains that push the peak past full scale, the share left to clip (the rest is scaled back)

    def __call__(self, wave: torch.Tensor, sample_rate: int, pool: list[torch.Tensor],
                 g: torch.Generator | None) -> torch.Tensor:
        if chance(g, self.p_reverb):
            wave = reverb(wave, sample_rate, uniform(g, *self.rt60), g)
        if chance(g, self.p_band):
            wave = band_limit(wave, sample_rate, uniform(g, 200, 400), uniform(g, 3000, min(3600, sample_rate / 2 - 50)))
        if chance(g, self.p_noise):
            kind = int(torch.randint(3 if pool else 2, (), generator=g))
            noise = (white_noise, pink_noise)[kind](len(wave), g) if kind < 2 else babble(len(wave), pool, g)
            wave = add_noise(wave, noise, uniform(g, *self.snr_db))
        wave = wave * 10 ** (uniform(g, *self.gain_db) / 20)
        peak = float(wave.abs().max()) if len(wave) else 0.0
        if peak > 1.0:
            wave = wave.clamp(-1, 1) if chance(g, self.p_clip) else wave / peak
        return wave
