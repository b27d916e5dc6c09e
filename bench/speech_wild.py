"""How a speech model does on recordings it was not trained on, end to end through `digitkit.api.transcribe`
(files written to a temporary folder and read back, as a user's would be):

- robust: the FSDD test split (index 0-4 of every speaker: 300 clips) as people record it: white noise at 20, 10
  and 5 dB SNR, tempo 0.85 and 1.15 (pitch kept), gain -20/+12 dB, 16 kHz, 44.1 kHz stereo, 1 s of silence
  around, and all at once ("as recorded": 44.1 kHz stereo, gain +-10 dB, 20 dB SNR, tempo 0.9 or 1.1, silence);
  and in steady white noise at 20 and 10 dB SNR that runs through 1 s before and after the word.
  A clip counts as right only when its transcript is exactly its digit.
- espeak: digit strings of 3-7 digits spoken by espeak-ng voices at their default rate, no pauses (synthetic
  voices: a test of fluent speech by voices never heard, never training data).
- reject: speech that is not digits (Speech Commands words of the test speakers, espeak-ng sentences) and noise
  alone: the share reported as not recognised; and the share of real digit recordings accepted.
- an4: the CMU AN4 digit strings of one speaker fold (`--an4-fold K`, for a model trained with
  `digitkit train digits --holdout-fold K`), or all of them (only fair for a model that never saw AN4).
- stream: `transcribe --stream` on three long streams with 0.8-1.6 s between the things said: FSDD test digits
  with faint noise under the whole stream, the same recordings spliced between stretches of faint noise (each with
  its own quiet edges), and the AN4 strings spliced the same way. An item counts as right only when exactly one
  printed string overlaps it, that string overlaps no other item, and its transcript is right.
- latency: `transcribe --stream` live: FSDD test digits fed into its stdin pipe in real time, 2 s apart; the time
  from the end of each digit to its line on the stdout pipe.
- cv (`--train-folds 1,2,3,4`): speaker-disjoint cross-validation on AN4: trains `digitkit train digits
  --holdout-fold K` for each fold (about 15 min each on 2 CPU cores) and scores each on its held-out speakers.
- loso (`--loso`, or `--loso theo,lucas`): FSDD leave-one-speaker-out: trains `digitkit train fsdd
  --holdout-speaker S` for each of FSDD's six speakers (about 8 min each on 2 CPU cores; `--loso-dataset digits`:
  the `digits` mix without any of S's recordings, about 14 min each) and scores each on all 500 recordings of its
  held-out speaker (single digits through `transcribe`, and the run's WER on 300 strings joined from them); prints
  the mean over speakers.

    DIGITKIT_DATA=../shared/datasets python bench/speech_wild.py [--model CKPT] [--an4-fold K] [--only robust,...]
    DIGITKIT_DATA=../shared/datasets python bench/speech_wild.py --train-folds 1,2,3,4 --only an4
    DIGITKIT_DATA=../shared/datasets python bench/speech_wild.py --loso [--loso-dataset digits]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-us+f3")
SENTENCES = ("hello, how are you today", "please call me back tomorrow", "the weather is lovely",
             "where did you put my keys", "turn the lights off in the kitchen", "good morning everybody",
             "I would like a cup of coffee", "this is a test of the system", "see you later", "what time is it")
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def tempo(wave: torch.Tensor, rate: float, sample_rate: int) -> torch.Tensor:
    """Faster (rate > 1) or slower speech at the same pitch: a phase vocoder over the STFT."""
    import torchaudio.functional as AF

    n_fft = 256 if sample_rate <= 16000 else 1024
    hop = n_fft // 4
    window = torch.hann_window(n_fft)
    spec = torch.stft(wave, n_fft, hop, window=window, return_complex=True)
    advance = torch.linspace(0, math.pi * hop, spec.shape[0])[..., None]
    stretched = AF.phase_vocoder(spec, rate, advance)
    return torch.istft(stretched, n_fft, hop, window=window, length=int(len(wave) / rate))


def write(path: Path, wave: torch.Tensor, sample_rate: int, channels: int = 1) -> Path:
    import soundfile as sf

    data = wave.clamp(-1, 1).numpy()
    if channels == 2:
        data = torch.stack([wave, wave * 0.8], 1).clamp(-1, 1).numpy()
    sf.write(str(path), data, sample_rate, subtype="PCM_16")
    return path


def noisy(wave: torch.Tensor, snr_db: float, g: torch.Generator) -> torch.Tensor:
    from digitkit.data.augment import add_noise

    return add_noise(wave, torch.randn(len(wave), generator=g), snr_db)


def resample(wave: torch.Tensor, old: int, new: int) -> torch.Tensor:
    import torchaudio.functional as AF

    return AF.resample(wave, old, new) if old != new else wave


def in_steady_noise(wave: torch.Tensor, snr_db: float, g: torch.Generator) -> torch.Tensor:
    """The clip with 1 s of room on each side and white noise throughout, `snr_db` below the speech: a word said
    in a steady noise (a fan, a car) that was there before it and goes on after it."""
    from digitkit.data.augment import power

    padded = torch.cat([torch.zeros(8000), wave, torch.zeros(8000)])
    return padded + torch.randn(len(padded), generator=g) * math.sqrt(power(wave) / 10 ** (snr_db / 10))


def robust_conditions(wave: torch.Tensor, g: torch.Generator, steady: torch.Generator) -> dict[str, tuple[torch.Tensor, int, int]]:
    """condition -> (wave, sample rate, channels) for one 8 kHz FSDD clip (`steady` draws the steady noise, so
    that the other conditions draw what they drew before it was added)."""
    pad = torch.zeros(8000)
    gain = 10 ** ((float(torch.rand((), generator=g)) * 20 - 10) / 20)
    rate = 0.9 if float(torch.rand((), generator=g)) < 0.5 else 1.1
    lead, tail = (torch.zeros(int(8000 * (0.5 + float(torch.rand((), generator=g))))) for _ in range(2))
    recorded = torch.cat([lead, noisy(tempo(wave, rate, 8000) * gain, 20, g), tail])
    recorded = recorded + torch.randn(len(recorded), generator=g) * float(recorded.abs().max()) * 0.003
    return {
        "clean": (wave, 8000, 1),
        "white noise 20 dB": (noisy(wave, 20, g), 8000, 1),
        "white noise 10 dB": (noisy(wave, 10, g), 8000, 1),
        "white noise 5 dB": (noisy(wave, 5, g), 8000, 1),
        "tempo 0.85": (tempo(wave, 0.85, 8000), 8000, 1),
        "tempo 1.15": (tempo(wave, 1.15, 8000), 8000, 1),
        "gain -20 dB": (wave * 0.1, 8000, 1),
        "gain +12 dB (clipped)": (wave * 4.0, 8000, 1),
        "16 kHz": (resample(wave, 8000, 16000), 16000, 1),
        "44.1 kHz stereo": (resample(wave, 8000, 44100), 44100, 2),
        "1 s silence around": (torch.cat([pad, wave, pad]), 8000, 1),
        "as recorded (all at once)": (resample(recorded, 8000, 44100), 44100, 2),
        "steady white noise 20 dB, 1 s around": (in_steady_noise(wave, 20, steady), 8000, 1),
        "steady white noise 10 dB, 1 s around": (in_steady_noise(wave, 10, steady), 8000, 1),
    }


def transcripts(paths: list[Path], model: str | None) -> list:
    from digitkit import api

    return list(api.transcribe(paths, model=model))


def section_robust(data: Path, tmp: Path, model: str | None) -> dict:
    from digitkit.data.audio import read_audio
    from digitkit.data.speech import load_fsdd

    test = load_fsdd(data, 0.0, 0).test
    g, steady = torch.Generator().manual_seed(7), torch.Generator().manual_seed(17)
    files: dict[str, list[tuple[Path, str]]] = {}
    for k, u in enumerate(test):
        for name, (wave, sr, ch) in robust_conditions(read_audio(u.path, 8000), g, steady).items():
            folder = tmp / "robust" / "".join(c if c.isalnum() else "_" for c in name)
            folder.mkdir(parents=True, exist_ok=True)
            files.setdefault(name, []).append((write(folder / f"{k}.wav", wave, sr, ch), u.word))
    out = {}
    for name, items in files.items():
        results = transcripts([p for p, _ in items], model)
        right = sum(getattr(r, "transcript", None) == word for r, (_, word) in zip(results, items))
        out[name] = {"accuracy": right / len(items), "clips": len(items)}
        print(f"  robust  {name:<37} {right / len(items):7.2%}  ({right}/{len(items)})", file=sys.stderr)
    return out


def espeak(text: str, voice: str, path: Path) -> Path:
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True)
    return path


def section_espeak(tmp: Path, model: str | None, count: int = 20) -> dict:
    from digitkit.ctc import word_error_rate

    if shutil.which("espeak-ng") is None:
        return {"skipped": "espeak-ng is not installed (apt-get install espeak-ng)"}
    g = torch.Generator().manual_seed(11)
    out = {}
    (tmp / "espeak").mkdir(exist_ok=True)
    for voice in VOICES:
        refs, paths = [], []
        for i in range(count):
            digits = torch.randint(0, 10, (int(torch.randint(3, 8, (), generator=g)),), generator=g).tolist()
            refs.append([str(d) for d in digits])
            paths.append(espeak(" ".join(DIGIT_WORDS[d] for d in digits), voice, tmp / "espeak" / f"{voice}-{i}.wav"))
        results = transcripts(paths, model)
        hyps = [(r.transcript or "").split() if hasattr(r, "transcript") else [] for r in results]
        heard = [[w["word"] or "?" for w in r.words] if hasattr(r, "words") else [] for r in results]
        wer, wer_heard = word_error_rate(refs, hyps), word_error_rate(refs, heard)
        exact = sum(h == r for h, r in zip(hyps, refs))
        out[voice] = {"wer": wer, "wer_before_rejection": wer_heard, "exact": exact, "strings": count}
        print(f"  espeak  {voice:<16} WER {wer_heard:6.2%} of the words heard ({wer:6.2%} counting rejected strings "
              f"as unheard), exact {exact}/{count}", file=sys.stderr)
    return out


def section_reject(data: Path, tmp: Path, model: str | None) -> dict:
    from digitkit.data.speech import load_digits, load_fsdd

    folder = tmp / "reject"
    folder.mkdir(exist_ok=True)
    others = load_digits(data, 0.0, 0).filler_test  # Speech Commands words of speakers no training run uses
    g = torch.Generator().manual_seed(13)
    noise = []
    for i in range(40):
        n = int(8000 * (1 + 2 * float(torch.rand((), generator=g))))
        wave = torch.randn(n, generator=g)
        if i % 2:  # pink
            spectrum = torch.fft.rfft(wave)
            wave = torch.fft.irfft(spectrum / torch.arange(len(spectrum)).clamp(min=1).sqrt(), n)
        level = 10 ** (-(10 + 40 * float(torch.rand((), generator=g))) / 20)
        noise.append(write(folder / f"noise-{i}.wav", wave / wave.abs().max() * level, 8000))
    sentences = []
    if shutil.which("espeak-ng"):
        sentences = [espeak(s, v, folder / f"say-{i}-{v}.wav") for i, s in enumerate(SENTENCES) for v in VOICES[:3]]
    out = {}
    for name, paths in (("other words (Speech Commands)", [u.path for u in others]), ("noise", noise),
                        ("sentences (espeak-ng)", sentences)):
        if not paths:
            continue
        rejected = sum(not getattr(r, "transcript", None) for r in transcripts(paths, model))
        out[name] = {"rejected": rejected / len(paths), "clips": len(paths)}
        print(f"  reject  {name:<30} {rejected / len(paths):7.2%} not recognised ({rejected}/{len(paths)})", file=sys.stderr)
    digits = [u.path for u in load_fsdd(data, 0.0, 0).test]
    accepted = sum(bool(getattr(r, "transcript", None)) for r in transcripts(digits, model))
    out["digits accepted (FSDD test)"] = {"accepted": accepted / len(digits), "clips": len(digits)}
    print(f"  accept  FSDD test digits {accepted / len(digits):7.2%} ({accepted}/{len(digits)})", file=sys.stderr)
    return out


def section_an4(data: Path, model: str | None, fold: int | None) -> dict:
    from digitkit.ctc import word_error_rate
    from digitkit.data.speech import an4_fold, load_an4_digits

    strings = [u for u in load_an4_digits(data) if fold is None or an4_fold(u.speaker) == fold]
    if not strings:
        return {"skipped": f"no AN4 digit strings in {data / 'an4-digits'}"}
    results = transcripts([u.path for u in strings], model)
    refs = [u.words for u in strings]
    hyps = [(r.transcript or "").split() if hasattr(r, "transcript") else [] for r in results]
    accepted = sum(bool(getattr(r, "transcript", None)) for r in results)
    heard = [[w["word"] or "?" for w in r.words] if hasattr(r, "words") else [] for r in results]
    out = {"wer": word_error_rate(refs, hyps), "wer_before_rejection": word_error_rate(refs, heard),
           "exact": sum(h == r for h, r in zip(hyps, refs)), "strings": len(strings), "accepted": accepted / len(strings),
           "speakers": len({u.speaker for u in strings}), "fold": fold, "refs": refs, "hyps": hyps,
           "heard": heard}
    print(f"  an4     fold {fold or 'all'}: {len(strings)} strings by {out['speakers']} speakers: WER "
          f"{out['wer_before_rejection']:.2%} of the words heard ({out['wer']:.2%} counting rejected strings as "
          f"unheard), exact {out['exact']}, accepted {out['accepted']:.2%}", file=sys.stderr)
    return out


def wav_stream(wave: torch.Tensor, sample_rate: int) -> bytes:
    """A live stream's bytes: a RIFF header that leaves the length unset, then 16-bit PCM (as arecord writes it)."""
    import struct

    pcm = (wave.clamp(-1, 1) * 32767).short().numpy().tobytes()
    return struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 0xFFFFFFFF, b"WAVE", b"fmt ", 16, 1, 1, sample_rate,
                       2 * sample_rate, 2, 16, b"data", 0xFFFFFFFF) + pcm


def live_delays(clips: list[torch.Tensor], rate: int, model: str | None = None, lead_s: float = 6.0,
                gap_s: float = 2.0) -> list[tuple[str, float]]:
    """`digitkit transcribe --stream` as it runs live: the clips (trimmed speech), each followed by `gap_s` of faint
    noise, fed into its stdin pipe in real time (20 ms of audio every 20 ms, after `lead_s` of noise during which
    the process starts), its stdout read from a pipe, without PYTHONUNBUFFERED (which would hide a line left in a
    buffer). -> (line printed, seconds from the moment a clip's last sample went into the pipe to its line)."""
    import threading
    import time

    g = torch.Generator().manual_seed(0)
    parts, ends = [0.002 * torch.randn(int(lead_s * rate), generator=g)], []
    for clip in clips:
        parts.append(clip)
        ends.append(2 * sum(len(p) for p in parts))  # the byte that ends the clip's speech
        parts.append(0.002 * torch.randn(int(gap_s * rate), generator=g))
    stream = wav_stream(torch.cat(parts), rate)
    head, audio = stream[:44], stream[44:]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    command = [sys.executable, "-m", "digitkit", "transcribe", "--stream", *(["--model", model] if model else [])]
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    lines: list[tuple[float, str]] = []
    reader = threading.Thread(target=lambda: lines.extend((time.monotonic(), raw.decode().rstrip("\n"))
                                                          for raw in proc.stdout))
    reader.start()
    said: list[float] = []
    chunk = 2 * int(0.02 * rate)
    try:
        proc.stdin.write(head)
        start = time.monotonic()
        for at in range(0, len(audio), chunk):
            time.sleep(max(0.0, start + at / (2 * rate) - time.monotonic()))
            proc.stdin.write(audio[at : at + chunk])
            proc.stdin.flush()
            said += [time.monotonic()] * sum(at < end <= at + chunk for end in ends)
        proc.stdin.close()
        reader.join(timeout=120)
    finally:
        proc.kill()
    return [(line, arrived - end) for (arrived, line), end in zip(lines, said)]


def section_latency(data: Path, model: str | None) -> dict:
    """How soon `transcribe --stream` prints a string after it was said, live (`live_delays`): ten FSDD test
    digits trimmed to their sound, 2 s apart."""
    from digitkit.data.audio import read_audio, trim_silence
    from digitkit.data.speech import load_fsdd

    rate = 16000
    clips = [trim_silence(read_audio(u.path, rate), rate, pad_s=0.0)[0] for u in load_fsdd(data, 0.0, 0).test[::30]]
    delays = sorted(d for _, d in live_delays(clips, rate, model))
    out = {"strings": len(clips), "printed": len(delays), "median_s": delays[len(delays) // 2] if delays else None,
           "max_s": delays[-1] if delays else None}
    timing = f"median {out['median_s']:.2f} s, at most {out['max_s']:.2f} s" if delays else "none printed"
    print(f"  latency {len(delays)} lines for {len(clips)} strings said live; from the end of each string to its "
          f"line: {timing}", file=sys.stderr)
    return out


def stream_score(items: list[tuple[float, float, str]], heard: list) -> int:
    """Spoken items (start, end, words) read right: exactly one printed string overlaps the item, it overlaps no
    other item, and its transcript is the item's words."""
    overlaps = lambda h, a, b: h.start < b and h.end > a
    right = 0
    for a, b, words in items:
        rows = [h for h in heard if overlaps(h, a, b)]
        if len(rows) == 1 and sum(overlaps(rows[0], x, y) for x, y, _ in items) == 1:
            right += rows[0].transcription.transcript == words
    return right


def section_stream(data: Path, model: str | None) -> dict:
    """`transcribe --stream` on long streams: items said one after another with 0.8-1.6 s between them. FSDD test
    digits (every 5th of the 300) in a room whose faint noise runs under the whole stream, and the same recordings
    spliced as recorded between stretches of faint noise (their own quiet edges inside the stream); the AN4 strings
    (16 kHz, fluent) spliced the same way."""
    import io

    from digitkit import api
    from digitkit.data.audio import read_audio
    from digitkit.data.speech import load_an4_digits, load_fsdd

    fsdd = load_fsdd(data, 0.0, 0).test[::5]
    an4 = load_an4_digits(data)
    cases = {
        "FSDD digits, noise under the whole stream": ([(read_audio(u.path, 8000), u.word) for u in fsdd], 8000, True),
        "FSDD digits spliced between noise": ([(read_audio(u.path, 8000), u.word) for u in fsdd], 8000, False),
        "AN4 strings spliced between noise": ([(read_audio(u.path, 16000), " ".join(u.words)) for u in an4], 16000,
                                              False),
    }
    out = {}
    for name, (clips, rate, under) in cases.items():
        g = torch.Generator().manual_seed(5)
        gap = lambda: torch.zeros(int(rate * (0.8 + 0.8 * float(torch.rand((), generator=g)))))
        parts, items = [gap()], []
        t = len(parts[0]) / rate
        for wave, words in clips:
            items.append((t, t + len(wave) / rate, words))
            parts += [wave, gap()]
            t += (len(wave) + len(parts[-1])) / rate
        stream = torch.cat(parts)
        if under:
            stream = stream + 0.001 * torch.randn(len(stream), generator=g)
        else:  # noise in the gaps only: each recording keeps its own background
            quiet = torch.ones(len(stream), dtype=torch.bool)
            for a, b, _ in items:
                quiet[int(a * rate) : int(b * rate)] = False
            stream = stream + quiet * 0.001 * torch.randn(len(stream), generator=g)
        heard = list(api.transcribe_stream(io.BytesIO(wav_stream(stream, rate)), model=model))
        right = stream_score(items, heard)
        out[name] = {"items": len(items), "printed": len(heard), "right": right / len(items)}
        print(f"  stream  {name:<42} {right / len(items):7.2%} right ({right}/{len(items)}); {len(heard)} strings "
              f"printed for {len(items)} said", file=sys.stderr)
    return out


def cross_validate(data: Path, folds: list[int], sections: list[str], keep: Path | None = None) -> dict:
    """Train `digits` with each AN4 speaker fold held out; score each fold's model on its own held-out speakers."""
    from digitkit import api
    from digitkit.ctc import word_error_rate

    out, refs, hyps, heard = {}, [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k in folds:
            model = (keep or Path(tmp)) / f"digits-fold{k}.safetensors"
            api.train("digits", data_dir=data, out=model, holdout_fold=k)
            fold = section_an4(data, str(model), k)
            refs, hyps, heard = refs + fold.pop("refs"), hyps + fold.pop("hyps"), heard + fold.pop("heard")
            out[f"fold {k}"] = fold
    out["all folds"] = {"wer": word_error_rate(refs, hyps), "wer_before_rejection": word_error_rate(refs, heard),
                        "strings": len(refs)}
    print(f"  cv      AN4 speaker-disjoint, {len(folds)} fold(s), {len(refs)} strings: WER "
          f"{out['all folds']['wer_before_rejection']:.2%} of the words heard, {out['all folds']['wer']:.2%} counting "
          f"rejected strings as unheard", file=sys.stderr)
    return out


def leave_one_speaker_out(data: Path, speakers: list[str], dataset: str = "fsdd", keep: Path | None = None) -> dict:
    """Train `dataset` (fsdd or digits) with each FSDD speaker held out; score each model on every recording of the
    speaker it never heard."""
    from digitkit import api
    from digitkit.data.speech import load_fsdd

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for speaker in speakers:
            model = (keep or Path(tmp)) / f"{dataset}-without-{speaker}.safetensors"
            run = api.train(dataset, data_dir=data, out=model, holdout_speaker=speaker)
            test = load_fsdd(data, 0.0, 0, holdout_speaker=speaker).test
            results = transcripts([u.path for u in test], str(model))
            right = sum(getattr(r, "transcript", None) == u.word for r, u in zip(results, test))
            out[speaker] = {"accuracy": right / len(test), "clips": len(test),
                            "strings_wer": run.metrics.get("test_sequence_wer"), "train_seconds": run.metrics.get("train_seconds")}
            print(f"  loso    {dataset} {speaker:<10} {right / len(test):7.2%} single digits ({right}/{len(test)}), WER "
                  f"{out[speaker]['strings_wer']:.2%} on strings joined from its recordings", file=sys.stderr)
    mean = sum(v["accuracy"] for v in out.values()) / len(out)
    mean_wer = sum(v["strings_wer"] for v in out.values()) / len(out)
    out["mean"] = {"accuracy": mean, "strings_wer": mean_wer, "speakers": len(speakers)}
    print(f"  loso    mean over {len(speakers)} speakers: {mean:.2%} single digits, WER {mean_wer:.2%}", file=sys.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="speech checkpoint (default: the shipped one)")
    parser.add_argument("--an4-fold", type=int, help="score the AN4 strings of this speaker fold only")
    parser.add_argument("--only", default="robust,espeak,reject,an4,stream,latency", help="comma-separated sections")
    parser.add_argument("--train-folds", help="train a model per AN4 speaker fold (e.g. 1,2,3,4) and score each")
    parser.add_argument("--loso", nargs="?", const="all", help="FSDD leave-one-speaker-out: all six speakers, or a "
                        "comma-separated list")
    parser.add_argument("--loso-dataset", choices=("fsdd", "digits"), default="fsdd",
                        help="what --loso trains: FSDD alone, or the digits mix (FSDD, Speech Commands, AN4)")
    parser.add_argument("--keep", type=Path, help="--loso, --train-folds: keep the trained models in this folder")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DIGITKIT_DATA", ROOT.parent / "shared" / "datasets")))
    args = parser.parse_args()
    sections = args.only.split(",")
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    report = {"model": args.model or "shipped"}
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    if args.loso:
        from digitkit.data.speech import load_fsdd

        speakers = sorted({u.speaker for u in load_fsdd(args.data_dir, 0.0, 0).test})
        report["loso"] = leave_one_speaker_out(args.data_dir, speakers if args.loso == "all" else args.loso.split(","),
                                               args.loso_dataset, args.keep)
        print(json.dumps(report, indent=1))
        return
    if args.train_folds:
        report["cv"] = cross_validate(args.data_dir, [int(k) for k in args.train_folds.split(",")], sections, args.keep)
        print(json.dumps(report, indent=1))
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        if "robust" in sections:
            report["robust"] = section_robust(args.data_dir, tmp_path, args.model)
        if "espeak" in sections:
            report["espeak"] = section_espeak(tmp_path, args.model)
        if "reject" in sections:
            report["reject"] = section_reject(args.data_dir, tmp_path, args.model)
        if "an4" in sections:
            an4 = section_an4(args.data_dir, args.model, args.an4_fold)
            report["an4"] = {k: v for k, v in an4.items() if k not in ("refs", "hyps", "heard")}
        if "stream" in sections:
            report["stream"] = section_stream(args.data_dir, args.model)
        if "latency" in sections:
            report["latency"] = section_latency(args.data_dir, args.model)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
