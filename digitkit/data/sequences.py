"""Connected speech made from real single-word recordings: joined with random short gaps, levels and a faint
noise floor, so a model learns to transcribe strings of words ("4 0 7 1 2 2 3") as well as single words; and the
wild recipe's epochs, which mix joined words, recorded strings, other speech and noise (`plan_epoch`, `render`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from digitkit.data.augment import Augment


def join_words(
    waves: list[torch.Tensor],
    sample_rate: int,
    generator: torch.Generator | None = None,
    gap_s: tuple[float, float] = (0.05, 0.35),
    gain: tuple[float, float] = (0.6, 1.4),
    edge_s: tuple[float, float] = (0.0, 0.2),
    spans: list[tuple[int, int]] | None = None,
    overlap: float = 0.0,
) -> torch.Tensor:
    """One waveform: silence, word, gap, word, ..., silence; every random choice drawn from `generator`.
    With probability `overlap` a gap is instead an overlap of up to 0.1 s (the next word starts inside the trimmed
    clip's quiet tail, as in fluent speech); overlapping samples add. If `spans` is given, each word's (start, end)
    sample is appended to it: the alignment is known exactly."""

    def uniform(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=generator))

    starts, gains, at = [], [], int(uniform(*edge_s) * sample_rate)
    for i, wave in enumerate(waves):
        if i:
            step = -uniform(0.0, 0.1) if overlap and float(torch.rand((), generator=generator)) < overlap else uniform(*gap_s)
            at = max(starts[-1] + len(waves[i - 1]) // 2, at + int(step * sample_rate))
        starts.append(at)
        gains.append(uniform(*gain))
        at += len(wave)
    out = torch.zeros(at + int(uniform(*edge_s) * sample_rate))
    for start, wave, level in zip(starts, waves, gains):
        out[start : start + len(wave)] += wave * level
        if spans is not None:
            spans.append((start, start + len(wave)))
    noise_level = 10 ** (uniform(-70, -50) / 20)  # a faint floor, as real recordings have
    return out + noise_level * torch.randn(len(out), generator=generator)


def sample_lengths(count: int, max_words: int, p_single: float, generator: torch.Generator | None = None) -> list[int]:
    """How many words each of `count` training sequences gets: one with probability `p_single`, else 2..max_words."""
    single = torch.rand(count, generator=generator) < p_single
    many = torch.randint(2, max(2, max_words) + 1, (count,), generator=generator)
    return torch.where(single, torch.ones_like(many), many).tolist()


FRAME_EDGE_S = 0.15  # silence put around a lone utterance, as the training sequences always have
LEVEL_DB = -20.0  # speech power (the louder half of its 20 ms frames) an utterance is scaled to, where a model asks


def set_level(wave: torch.Tensor, level_db: float = LEVEL_DB) -> torch.Tensor:
    """The same utterance at a fixed loudness: a whisper and a shout then give the model the same features."""
    from digitkit.data.augment import power

    return wave * math.sqrt(10 ** (level_db / 10) / power(wave)) if len(wave) else wave


def present(wave: torch.Tensor, sample_rate: int, level_db: float | None = None) -> tuple[torch.Tensor, float]:
    """An utterance as a model hears it -> (audio, its start in `wave`, in seconds). Models trained on clean trimmed
    words (no `level_db`) get the trimmed speech between synthetic silent edges; models trained for recordings in the
    wild get the speech in its recorded context, scaled to `level_db`. Either way steady noise around the speech
    is cut away first (`trim_silence`'s noise floor), as training sequences have little around their words."""
    from digitkit.data.audio import SPEECH_ABOVE_NOISE_DB, trim_silence

    if level_db is None:
        speech, cut = trim_silence(wave, sample_rate, above_floor_db=SPEECH_ABOVE_NOISE_DB)
        return (frame_utterance(speech, sample_rate), cut - FRAME_EDGE_S) if len(speech) else (speech, cut)
    speech, cut = in_context(wave, sample_rate)
    return set_level(speech, level_db), cut


def present_training(wave: torch.Tensor, spans: list[tuple[int, int]] | None, sample_rate: int,
                     level_db: float) -> tuple[torch.Tensor, list[tuple[int, int]] | None]:
    """A rendered training sequence through the front end `transcribe` uses (`present`), its word spans moved with
    it. A training sequence's edges are drawn 0-0.3 s wide, so some are as tight as a corpus clip cut close around
    its word; `present` then continues them with noise like the sequence's quietest frames, which in a tight clip
    are the word's own edges. Without this, that padding around a clean word was an edge no training sequence had:
    a `digits` model trained without it read 270 of FSDD's 300 clean test digits right through `transcribe`, 280
    when `transcribe` framed them in silence instead (and then lost the noisy ones)."""
    out, start = present(wave, sample_rate, level_db)
    shift = int(round(start * sample_rate))
    moved = [(min(max(a - shift, 0), len(out)), min(max(b - shift, 0), len(out))) for a, b in spans or []]
    # In deep noise the front end keeps only the loudest stretch and would cut words whose tokens stay in the
    # target: such a sequence (and a silent one) trains on its whole audio at the level instead.
    if len(out) == 0 or any(d - c < 0.8 * (b - a) for (a, b), (c, d) in zip(spans or [], moved)):
        return set_level(wave, level_db), spans
    return out, (moved if spans is not None else None)


def in_context(wave: torch.Tensor, sample_rate: int, edge_s: float = FRAME_EDGE_S) -> tuple[torch.Tensor, float]:
    """-> (the speech in `wave` with `edge_s` of the recording's own audio on each side, continued with noise like
    its background where the recording has less; its start in `wave`, in seconds). The speech is what stands
    `SPEECH_ABOVE_NOISE_DB` above the recording's noise floor, so a word with a second of steady noise on each side
    is cut to it: training sequences have at most 0.3 s around their words. Keeping the recording's own
    background, noise included, matches training, where noise covers a sequence's silent edges; padding a noisy
    recording with silence instead, an edge no training sequence has, read as words (FSDD test digits at 10 dB
    SNR, `bench/speech_wild.py`: 44 % right, against 90 % with noise padding). A faint floor 45 dB below the speech
    (fixed seed) is added throughout, as training sequences have one: digital silence is never seen in training."""
    from digitkit.data.audio import SPEECH_ABOVE_NOISE_DB, background_noise, trim_silence
    from digitkit.data.augment import power

    speech, cut = trim_silence(wave, sample_rate, pad_s=0.0, above_floor_db=SPEECH_ABOVE_NOISE_DB)
    if len(speech) == 0:
        return speech, 0.0
    edge = int(edge_s * sample_rate)
    start = int(round(cut * sample_rate))
    lo, hi = max(0, start - edge), min(len(wave), start + len(speech) + edge)
    before, after = edge - (start - lo), edge - (hi - start - len(speech))
    kept = wave[lo:hi]
    out = torch.cat([background_noise(kept, before, seed=1), kept, background_noise(kept, after, seed=2)])
    floor = math.sqrt(power(speech)) * 10 ** (-45 / 20)
    out = out + floor * torch.randn(len(out), generator=torch.Generator().manual_seed(0))
    return out, (lo - before) / sample_rate


def frame_utterance(wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """A trimmed utterance framed like a training sequence: silent edges and the same faint noise floor, drawn
    from a fixed seed so the same clip always gives the same answer. (Bare clips score clearly worse.)"""
    return join_words([wave], sample_rate, generator=torch.Generator().manual_seed(0), gain=(1.0, 1.0),
                      edge_s=(FRAME_EDGE_S, FRAME_EDGE_S))


@dataclass
class Pools:
    """The training recordings of a speech run, by what they hold. Token 0 is CTC's blank."""

    words: list[torch.Tensor]  # one word each
    word_tokens: list[int]
    word_speakers: list[str]
    strings: list[torch.Tensor] = field(default_factory=list)  # recorded strings of words, spoken fluently
    string_tokens: list[list[int]] = field(default_factory=list)
    fillers: list[torch.Tensor] = field(default_factory=list)  # other speech: each one `filler_token`
    filler_token: int = 0


@dataclass(frozen=True)
class Recipe:
    """An epoch's mixture for recordings in the wild: joined words with tempo changes per word, fluent overlaps and
    repeats; each recorded string a few times; fluent sequences of other words (each the filler token) with a few
    digit words among them, and sequences of noise alone (no token), so that neither reads as digits; every sequence
    then through `augment`."""

    max_words: int = 7
    p_single: float = 0.3
    string_repeats: int = 4
    filler_share: float = 0.4  # other-speech sequences per epoch, as a share of the filler recordings / 2.5
    filler_words: int = 7  # an other-speech sequence holds 1 to this many words ...
    filler_digits: float = 0.25  # ... of which about this share are digit words (labelled as digits), never all
    filler_gap_s: float = 0.1  # ... joined with pauses of at most this long, or overlapping: fluent, as sentences are
    noise_share: float = 0.03  # noise-only sequences, as a share of all the others
    p_same_speaker: float = 0.5
    p_repeat: float = 0.15
    overlap: float = 0.35
    word_level_db: float = 10.0  # joined words' levels spread over +-this many dB
    augment: Augment = field(default_factory=Augment)


# ("words" | "fillers" | "string" | "noise", indices into that pool); a "fillers" sequence indexes the digit words
# and then the fillers as one list (`_other_clip`), since digit words come among the other speech
Item = tuple[str, list[int]]


def _other_speech(pools: Pools, recipe: Recipe, g: torch.Generator | None) -> Item:
    """One fluent sequence of other speech. Isolated words joined with long pauses taught the filler for single
    words only: fluent sentences then read as digits. A few digit words among them, as in "call me at five", keep
    each word's label its own: a filler beside a digit is still filler, and the digit still a digit."""
    n_words = len(pools.words)
    draw_filler = lambda: n_words + int(torch.randint(len(pools.fillers), (), generator=g))
    picks = []
    for _ in range(int(torch.randint(1, recipe.filler_words + 1, (), generator=g))):
        if n_words and float(torch.rand((), generator=g)) < recipe.filler_digits:
            picks.append(int(torch.randint(n_words, (), generator=g)))
        else:
            picks.append(draw_filler())
    if all(i < n_words for i in picks):  # other speech holds at least one word that is not a digit
        picks[int(torch.randint(len(picks), (), generator=g))] = draw_filler()
    return "fillers", picks


def _other_clip(pools: Pools, i: int) -> tuple[torch.Tensor, int]:
    """(recording, token) of index `i` of a "fillers" sequence."""
    n_words = len(pools.words)
    return (pools.words[i], pools.word_tokens[i]) if i < n_words else (pools.fillers[i - n_words], pools.filler_token)


def _word_sequences(pools: Pools, recipe: Recipe, g: torch.Generator | None) -> list[Item]:
    by_speaker: dict[str, list[int]] = {}
    by_speaker_token: dict[tuple[str, int], list[int]] = {}
    for i, (s, t) in enumerate(zip(pools.word_speakers, pools.word_tokens)):
        by_speaker.setdefault(s, []).append(i)
        by_speaker_token.setdefault((s, t), []).append(i)
    pick = lambda options: options[int(torch.randint(len(options), (), generator=g))]
    mean_words = recipe.p_single + (1 - recipe.p_single) * (2 + recipe.max_words) / 2
    count = max(1, math.ceil(len(pools.words) / mean_words))
    order = torch.randperm(len(pools.words), generator=g).tolist()
    items, cursor = [], 0
    for k in sample_lengths(count, recipe.max_words, recipe.p_single, generator=g):
        first = order[cursor % len(order)]
        cursor += 1
        speaker = pools.word_speakers[first]
        same = len(by_speaker[speaker]) >= 3 and float(torch.rand((), generator=g)) < recipe.p_same_speaker
        picks = [first]
        while len(picks) < k:
            if float(torch.rand((), generator=g)) < recipe.p_repeat:
                key = (pools.word_speakers[picks[-1]], pools.word_tokens[picks[-1]])
                picks.append(pick(by_speaker_token[key]))
            elif same:
                picks.append(pick(by_speaker[speaker]))
            else:
                picks.append(order[cursor % len(order)])
                cursor += 1
        items.append(("words", picks))
    return items


def plan_epoch(pools: Pools, recipe: Recipe, with_strings: bool, g: torch.Generator | None) -> list[Item]:
    """The epoch's sequences, in training order, as indices into the pools."""
    items = _word_sequences(pools, recipe, g)
    strings = [("string", [i]) for i in range(len(pools.strings))] * recipe.string_repeats
    # without the strings, as many joined sequences instead: every epoch has the same number of steps
    items += strings if with_strings else _word_sequences(pools, recipe, g)[: len(strings)]
    if pools.fillers:
        items += [_other_speech(pools, recipe, g) for _ in range(math.ceil(len(pools.fillers) / 2.5 * recipe.filler_share))]
    items += [("noise", [])] * math.ceil(len(items) * recipe.noise_share)
    return [items[i] for i in torch.randperm(len(items), generator=g).tolist()]


def planned_samples(item: Item, pools: Pools, sample_rate: int) -> int:
    """A planned sequence's length before tempo changes, gaps and overlaps: what batches are grouped by. It depends
    on the plan alone, so every rank of a distributed run groups alike (the rendered lengths depend on each rank's
    own draws)."""
    kind, picks = item
    if kind == "noise":
        return int(1.75 * sample_rate)  # render draws 0.5-3 s
    if kind == "string":
        return len(pools.strings[picks[0]])
    if kind == "fillers":
        return sum(len(_other_clip(pools, i)[0]) for i in picks)
    return sum(len(pools.words[i]) for i in picks)


def by_length(items: list[Any], batch_size: int, length: Callable[[Any], int], window: int,
              g: torch.Generator | None) -> list[list[Any]]:
    """An epoch's items (in their random order) as batches of similar length: each run of `window` batches' worth
    is sorted by `length` and cut into batches, and then all batches are shuffled. A batch then pads little (a
    recurrent layer runs as many steps as its longest sequence), while the epoch still goes from long to short
    batches at random. As many batches as cutting the items in order gives."""
    batches = []
    span = batch_size * window
    for start in range(0, len(items), span):
        chunk = sorted(items[start : start + span], key=length)
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]


def render(item: Item, pools: Pools, recipe: Recipe, sample_rate: int,
           g: torch.Generator | None = None) -> tuple[torch.Tensor, list[int], list[tuple[int, int]] | None]:
    """(waveform, tokens, each word's sample span or None where unknown) of one planned sequence."""
    from digitkit.data.augment import babble, pink_noise, random_speed, uniform, white_noise

    kind, picks = item
    if kind == "noise":
        n = int(uniform(g, 0.5, 3.0) * sample_rate)
        noise = (white_noise(n, g), pink_noise(n, g), babble(n, pools.words, g))[int(torch.randint(3, (), generator=g))]
        return noise * 10 ** (uniform(g, -50, -10) / 20) / (noise.abs().max() + 1e-9), [], []
    if kind == "string":
        wave = random_speed(pools.strings[picks[0]], sample_rate, g)
        edges = [torch.zeros(int(uniform(g, 0.0, 0.3) * sample_rate)) for _ in range(2)]
        wave = torch.cat([edges[0], wave, edges[1]])
        return recipe.augment(wave, sample_rate, pools.words, g), list(pools.string_tokens[picks[0]]), None
    if kind == "words":
        clips, tokens = [pools.words[i] for i in picks], [pools.word_tokens[i] for i in picks]
    else:
        clips, tokens = (list(x) for x in zip(*(_other_clip(pools, i) for i in picks)))
    spans: list[tuple[int, int]] = []
    # each word at a level drawn within +-word_level_db of LEVEL_DB, not as recorded: the corpora were recorded
    # 30 dB apart (theo's FSDD words at -41 dBFS, jackson's at -19), and joined as recorded, a quiet word beside a
    # loud one was buried under the noise added at the loud one's SNR, its token kept: a target no ear could meet
    levels = [LEVEL_DB + uniform(g, -recipe.word_level_db, recipe.word_level_db) for _ in picks]
    gap_s = (0.0, 0.3 if kind == "words" else recipe.filler_gap_s)
    wave = join_words([set_level(random_speed(clip, sample_rate, g), db) for clip, db in zip(clips, levels)],
                      sample_rate, g, gap_s=gap_s, edge_s=(0.0, 0.3), spans=spans, overlap=recipe.overlap)
    return recipe.augment(wave, sample_rate, pools.words, g), tokens, spans
