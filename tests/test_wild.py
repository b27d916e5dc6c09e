"""Speech in the wild: the `digits` dataset's sources and speaker folds, waveform augmentation, the wild recipe's
epochs, word times from the audio around CTC spikes, and rejection of what is not digits."""

import json
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import REPO, run_cli
from digitkit import api
from digitkit import checkpoint as ckpt_io
from digitkit.data import augment as A
from digitkit.data.sequences import (FRAME_EDGE_S, Pools, Recipe, by_length, join_words, plan_epoch, planned_samples,
                                     present_training, render)
from digitkit.data.speech import AN4_FOLDS, an4_fold, load_an4_digits, load_digits
from digitkit.errors import DataError
from digitkit.recognize import Recognizer, Transcription, word_bounds

sys.path.insert(0, str(REPO / "bench"))
from speech_wild import live_delays, wav_stream  # noqa: E402  (the bench's own streams, live and whole)


def tone(seconds: float, hz: float = 440.0, rate: int = 8000, level: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * rate)) / rate
    return level * torch.sin(2 * torch.pi * hz * t)


def test_an4_strings_read_oh_as_zero_and_fold_by_speaker(data_dir):
    strings = load_an4_digits(data_dir)
    assert len(strings) == 92 and all(set(u.words) <= set("0123456789") for u in strings)
    table = (data_dir / "an4-digits" / "transcripts.tsv").read_text().splitlines()[1:]
    with_oh = next(line.split("\t") for line in table if " oh" in line.split("\t")[2])
    assert next(u for u in strings if u.path.name == with_oh[0].split("/")[-1]).words == list(with_oh[1])
    folds = {}
    for u in strings:
        folds.setdefault(an4_fold(u.speaker), set()).add(u.speaker)
    assert set(folds) == set(range(1, AN4_FOLDS + 1))
    assert sum(len(s) for s in folds.values()) == len({u.speaker for u in strings})  # no speaker in two folds


def test_digits_sources_keep_each_corpus_test_out(data_dir):
    splits = load_digits(data_dir, val_split=0.1, seed=0, holdout_fold=2)
    train = {u.path for u in splits.train + splits.val}
    assert not train & {u.path for u in splits.test}
    test_strings = [u for u in splits.test if len(u.words) > 1]
    train_strings = [u for u in splits.train if len(u.words) > 1]
    assert test_strings and train_strings and len(test_strings) + len(train_strings) == 92
    assert not {u.speaker for u in test_strings} & {u.speaker for u in train_strings}
    assert all(int(u.path.stem.split("_")[2]) >= 5 for u in splits.train if u.corpus == "fsdd")
    assert {u.corpus for u in splits.train} == {"fsdd", "speechcommands", "an4"}
    assert {u.word for u in splits.train if len(u.words) == 1} == set("0123456789")
    assert splits.fillers and not {u.path for u in splits.fillers} & {u.path for u in splits.filler_test}
    assert all(u.word not in "0123456789" for u in splits.fillers)
    assert len([u for u in load_digits(data_dir, 0.1, 0).train if len(u.words) > 1]) == 92
    with pytest.raises(DataError, match="1..4"):
        load_digits(data_dir, 0.1, 0, holdout_fold=9)


def test_digits_can_hold_an_fsdd_speaker_out_of_every_part_of_the_mix(data_dir):
    splits = load_digits(data_dir, val_split=0.1, seed=0, holdout_speaker="theo")
    fsdd_test = [u for u in splits.test if u.corpus == "fsdd"]
    assert len(fsdd_test) == 500 and {u.speaker for u in fsdd_test} == {"theo"}
    assert "theo" not in {u.speaker for u in splits.train + splits.val}
    # the other FSDD speakers train on all their recordings, the standard test indices included
    assert any(int(u.path.stem.split("_")[2]) < 5 for u in splits.train + splits.val if u.corpus == "fsdd")
    assert len([u for u in splits.train if len(u.words) > 1]) == 92
    with pytest.raises(DataError, match="speakers are"):
        load_digits(data_dir, 0.1, 0, holdout_speaker="nobody")


def test_speed_changes_duration_and_noise_hits_its_snr():
    wave = tone(1.0)
    assert abs(len(A.speed(wave, 1.1, 8000)) - 8000 / 1.1) < 10 and len(A.speed(wave, 1.0, 8000)) == 8000
    g = torch.Generator().manual_seed(0)
    noise = A.white_noise(8000, g)
    mixed = A.add_noise(wave, noise, 10.0)
    snr = 10 * torch.log10(wave.pow(2).mean() / (mixed - wave).pow(2).mean())
    assert abs(float(snr) - 10.0) < 0.5
    pink = A.pink_noise(8001, g)  # odd length: padded to a fast FFT size and cut back
    low, high = torch.fft.rfft(pink).abs().pow(2)[10:400].mean(), torch.fft.rfft(pink).abs().pow(2)[3000:3990].mean()
    assert len(pink) == 8001 and low > 5 * high


def test_band_limit_and_reverb():
    rate = 8000
    low, mid = tone(1.0, 100.0), tone(1.0, 1000.0)
    assert A.band_limit(low, rate).pow(2).mean() < 0.05 * low.pow(2).mean()
    assert A.band_limit(mid, rate).pow(2).mean() > 0.9 * mid.pow(2).mean()
    click = torch.zeros(4000)
    click[100] = 1.0
    wet = A.reverb(click, rate, 0.3, torch.Generator().manual_seed(1))
    assert len(wet) == 4000 and wet[100:].abs().max() == pytest.approx(1.0, abs=1e-4)
    assert wet[300:1500].abs().sum() > 0.5  # a tail after the direct sound
    assert wet[:99].abs().max() < 1e-4  # nothing before it


def test_augment_is_seeded_and_stays_in_range():
    wave = tone(0.8)
    pool = [tone(0.5, 300), tone(0.7, 500)]
    a = A.Augment()(wave, 8000, pool, torch.Generator().manual_seed(3))
    b = A.Augment()(wave, 8000, pool, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and len(a) == len(wave) and a.abs().max() <= 1.0
    for seed in range(20):
        out = A.Augment(p_clip=1.0)(wave, 8000, pool, torch.Generator().manual_seed(seed))
        assert torch.isfinite(out).all() and out.abs().max() <= 1.0


def test_join_words_overlaps_and_keeps_spans():
    words = [tone(0.3, 300 + 100 * i) for i in range(4)]
    spans = []
    joined = join_words(words, 8000, torch.Generator().manual_seed(0), edge_s=(0, 0), spans=spans, overlap=1.0)
    assert len(joined) < sum(len(w) for w in words)  # every gap is an overlap
    assert all(b - a == len(w) for (a, b), w in zip(spans, words))
    assert all(spans[i + 1][0] < spans[i][1] for i in range(3))
    assert all(spans[i + 1][0] >= spans[i][0] + len(words[i]) // 2 for i in range(3))  # never more than half


def _pools() -> Pools:
    words = [tone(0.3, 200 + 20 * i) for i in range(40)]
    return Pools(words, [1 + i % 10 for i in range(40)], [f"s{i % 4}" for i in range(40)],
                 strings=[tone(1.2), tone(1.5)], string_tokens=[[1, 2, 3], [4, 4]],
                 fillers=[tone(0.4, 900), tone(0.4, 1100)], filler_token=11)


def test_wild_epoch_mixes_every_source_at_a_fixed_size():
    pools, recipe = _pools(), Recipe()
    before = plan_epoch(pools, recipe, with_strings=False, g=torch.Generator().manual_seed(0))
    after = plan_epoch(pools, recipe, with_strings=True, g=torch.Generator().manual_seed(0))
    assert len(before) == len(after)  # the schedule's step count must not change when CTC takes over
    assert {k for k, _ in after} == {"words", "string", "fillers", "noise"} and "string" not in {k for k, _ in before}
    g = torch.Generator().manual_seed(1)
    for item in after:
        wave, tokens, spans = render(item, pools, recipe, 8000, g)
        assert torch.isfinite(wave).all() and wave.abs().max() <= 1.0
        if item[0] == "string":
            assert tokens == pools.string_tokens[item[1][0]] and spans is None
        elif item[0] == "noise":
            assert tokens == [] and spans == []
        elif item[0] == "fillers":
            n = len(pools.words)
            assert tokens == [pools.word_tokens[i] if i < n else 11 for i in item[1]] and len(spans) == len(tokens)
            assert 11 in tokens
        else:
            assert tokens == [pools.word_tokens[i] for i in item[1]] and len(spans) == len(tokens)
            assert all(0 <= a < b <= len(wave) for a, b in spans)


def test_other_speech_is_fluent_and_holds_a_few_digit_words_labelled_as_digits():
    """Sentences are fluent: other speech trains as runs of up to `filler_words` words with short pauses, some of
    them digit words that keep their own label, never digits alone (that would be a digit string labelled filler)."""
    pools, recipe = _pools(), Recipe(augment=A.Augment(p_noise=0.0, p_band=0.0, p_reverb=0.0, gain_db=(0.0, 0.0)))
    items = [i for i in plan_epoch(pools, recipe, with_strings=True, g=torch.Generator().manual_seed(0)) if i[0] == "fillers"]
    for seed in range(1, 30):
        items += [i for i in plan_epoch(pools, recipe, True, torch.Generator().manual_seed(seed)) if i[0] == "fillers"]
    n = len(pools.words)
    sizes = [len(picks) for _, picks in items]
    digits = sum(i < n for _, picks in items for i in picks) / sum(sizes)
    assert min(sizes) == 1 and max(sizes) == recipe.filler_words
    assert 0.1 < digits < recipe.filler_digits + 0.05  # a few digit words (fewer after the not-all-digits rule) ...
    assert all(any(i >= n for i in picks) for _, picks in items)  # ... never all of them
    g = torch.Generator().manual_seed(0)
    for item in items[:40]:
        _, tokens, spans = render(item, pools, recipe, 8000, g)
        gaps = [(b0 - a1) / 8000 for (_, a1), (b0, _) in zip(spans, spans[1:])]
        assert all(gap <= recipe.filler_gap_s + 1e-3 for gap in gaps)
        assert planned_samples(item, pools, 8000) == sum(len(_clip) for _clip in
                                                         (pools.words[i] if i < n else pools.fillers[i - n] for i in item[1]))


def test_joined_words_come_at_like_levels_whatever_they_were_recorded_at():
    """Corpora record 30 dB apart; a word joined as recorded beside a louder one would be buried under the noise
    added at the louder one's SNR while its token stays in the target."""
    quiet, loud = tone(0.4, 300, level=0.003), tone(0.4, 500, level=0.9)  # 50 dB apart
    pools = Pools([quiet, loud], [1, 2], ["a", "b"])
    clean = A.Augment(p_noise=0.0, p_band=0.0, p_reverb=0.0, gain_db=(0.0, 0.0))
    for spread, most in ((0.0, 8.0), (Recipe().word_level_db, 2 * Recipe().word_level_db + 8.0)):
        recipe = Recipe(word_level_db=spread, augment=clean)
        gaps = []
        for seed in range(20):
            wave, tokens, spans = render(("words", [0, 1]), pools, recipe, 8000, torch.Generator().manual_seed(seed))
            levels = [10 * np.log10(A.power(wave[a:b])) for a, b in spans]
            assert tokens == [1, 2]
            gaps.append(abs(levels[0] - levels[1]))
        assert max(gaps) < most  # the spread drawn, plus the join's own gains of +-3 dB each
    assert max(gaps) > 4.0  # and words do come at different levels


def test_training_sequences_pass_the_front_end_transcribe_uses():
    """A training sequence is presented as a user's recording is (`present`): a tight one is continued with noise
    like its quietest frames, and its word spans move with the audio; where the front end would cut a word (deep
    noise), the sequence trains whole instead, so no token is left without its sound."""
    g = torch.Generator().manual_seed(0)
    words = [tone(0.3, 300), tone(0.3, 600)]
    spans: list = []
    tight = join_words(words, 8000, g, gap_s=(0.2, 0.2), edge_s=(0.0, 0.0), spans=spans)
    out, moved = present_training(tight, spans, 8000, -20.0)
    edge = int(FRAME_EDGE_S * 8000)
    assert len(out) == len(tight) + 2 * edge and moved == [(a + edge, b + edge) for a, b in spans]
    assert out[:edge].abs().max() > 0  # continued with noise, not silence
    a, b = moved[1]
    assert torch.corrcoef(torch.stack([out[a:b], tight[spans[1][0]:spans[1][1]]]))[0, 1] > 0.99
    spans = []
    buried = join_words([tone(0.3, 300, level=0.9), tone(0.3, 600, level=0.002)], 8000, g, gap_s=(0.5, 0.5),
                        edge_s=(0.0, 0.0), spans=spans)
    buried = buried + 0.003 * torch.randn(len(buried), generator=g)  # the second word is under the noise
    out, kept = present_training(buried, spans, 8000, -20.0)
    assert kept == spans and len(out) == len(buried)  # whole, at the level
    assert abs(10 * np.log10(A.power(out)) - (-20.0)) < 0.5


def test_bucketed_batches_pad_less_and_keep_every_sequence():
    """--bucket: an epoch's sequences grouped by planned length hold each sequence once, in as many batches as
    before, seeded, with a fraction of the padding (a recurrent layer runs as many steps as a batch's longest)."""
    import math

    words = [tone(0.15 + 0.02 * i, 200 + 20 * i) for i in range(40)]
    pools = Pools(words, [1 + i % 10 for i in range(40)], [f"s{i % 4}" for i in range(40)],
                  strings=[tone(1.2), tone(2.5)], string_tokens=[[1, 2, 3], [4, 4, 5, 6, 7]],
                  fillers=[tone(0.4, 900), tone(0.8, 1100)], filler_token=11)
    items = plan_epoch(pools, Recipe(), with_strings=True, g=torch.Generator().manual_seed(0))
    length = lambda item: planned_samples(item, pools, 8000)
    batches = by_length(items, 8, length, 4, torch.Generator().manual_seed(0))
    assert sorted(map(repr, items)) == sorted(repr(item) for batch in batches for item in batch)
    assert len(batches) == math.ceil(len(items) / 8)
    assert batches == by_length(items, 8, length, 4, torch.Generator().manual_seed(0))
    padding = lambda bs: sum(max(map(length, b)) * len(b) - sum(map(length, b)) for b in bs)
    assert padding(batches) < 0.5 * padding([items[i : i + 8] for i in range(0, len(items), 8)])


def test_word_bounds_follow_the_audio_around_each_spike():
    db = torch.full((200,), -60.0)
    db[20:60] = -20.0  # word one: 0.2-0.6 s
    db[70:110] = -18.0  # word two: 0.7-1.1 s ...
    db[80:82] = -60.0  # ... with a dip of 20 ms inside it, bridged
    assert word_bounds(db, [40.0, 95.0]) == [(20, 60), (70, 110)]
    # two spikes in one run of sound (no pause between fluent words): split halfway, never overlapping
    db2 = torch.full((100,), -60.0)
    db2[10:90] = -20.0
    (a0, a1), (b0, b1) = word_bounds(db2, [30.0, 70.0])
    assert a0 == 10 and b1 == 90 and a1 <= b0


class _Ckpt:
    classes = [str(d) for d in range(10)]
    input = {"sample_rate": 8000, "n_mels": 40, "filler": True}
    model_name, model_config = "lstm", {"num_tokens": 12}

    def build_model(self, device):
        from digitkit.models.speech import SpeechConfig, SpeechRecognizer

        return SpeechRecognizer(SpeechConfig(num_tokens=12)).eval()


def test_verdict_rejects_other_speech_and_low_confidence():
    rec = Recognizer(_Ckpt(), torch.device("cpu"), min_confidence=0.6)
    word = lambda w, c: {"word": w, "start": 0.0, "end": 0.3, "confidence": c}
    assert rec.verdict("a", [word("4", 0.9), word("2", 0.8)]).transcript == "4 2"
    other = rec.verdict("a", [word("4", 0.9), word(None, 0.9)])
    assert other.transcript is None and "other than digits" in other.warning
    unsure = rec.verdict("a", [word("4", 0.9), word("2", 0.4)])
    assert unsure.transcript is None and "0.40" in unsure.warning and unsure.words
    assert rec.verdict("a", []).transcript is None
    assert Transcription("a", None, 0.0).to_dict()["transcript"] is None


def test_not_recognised_prints_a_question_mark_and_json_null(tmp_path):
    rate = 8000
    g = torch.Generator().manual_seed(0)
    sf.write(tmp_path / "noise.wav", (0.3 * torch.randn(2 * rate, generator=g)).clamp(-1, 1).numpy(), rate)
    proc = run_cli("transcribe", "--min-confidence", "1", str(tmp_path / "noise.wav"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\t")[1] == "?"
    proc = run_cli("transcribe", "--json", "--min-confidence", "1", str(tmp_path / "noise.wav"))
    assert json.loads(proc.stdout)["transcript"] is None
    bad = run_cli("transcribe", "--min-confidence", "2", str(tmp_path / "noise.wav"))
    assert bad.returncode == 2 and "--min-confidence" in bad.stderr


def test_digits_training_run_reports_recorded_strings_of_unseen_speakers(tmp_path, data_dir):
    out = tmp_path / "digits.safetensors"
    result = api.train("digits", out=out, data_dir=data_dir, holdout_fold=1, holdout_speaker="theo", limit=200,
                       epochs=2, model_options={"hidden": 32, "layers": 1, "conv_channels": 32})
    m = result.metrics
    assert m["test_recorded"] == len([u for u in load_an4_digits(data_dir) if an4_fold(u.speaker) == 1])
    assert 0 <= m["test_recorded_wer"] and m["test_samples"] > 500
    ckpt = ckpt_io.load(out)
    assert ckpt.input["filler"] is True and ckpt.model_config["num_tokens"] == 12 and ckpt.input["sample_rate"] == 8000
    proc = run_cli("evaluate", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["recorded"] == m["test_recorded"] and abs(data["recorded_wer"] - m["test_recorded_wer"]) < 1e-6
    # on FSDD alone, the speaker the model never heard stays its test set: all 500 of theo's recordings
    proc = run_cli("evaluate", str(out), "--dataset", "fsdd", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["samples"] == 500 and "theo held out" in json.loads(proc.stdout)["note"]


def _stream_rows(waves: list[torch.Tensor], rate: int) -> list[list[str]]:
    """`digitkit transcribe --stream` on the waves one after another, as one live WAV stream on stdin (written as
    bench/speech_wild.py writes its streams) -> its output lines, split at tabs."""
    proc = run_cli("transcribe", "--stream", stdin=wav_stream(torch.cat(waves), rate), timeout=300)
    assert proc.returncode == 0, proc.stderr
    return [line.split("\t") for line in proc.stdout.decode().splitlines()]


def test_stream_prints_each_string_after_its_pause(tmp_path, data_dir):
    from digitkit.data.audio import read_audio

    rate = 16000
    clips = sorted((data_dir / "fsdd" / "recordings").glob("*_jackson_[0-4].wav"))[::7][:5]
    g = torch.Generator().manual_seed(0)
    parts, truth = [0.002 * torch.randn(rate, generator=g)], []
    for clip in clips:
        parts += [read_audio(clip, rate), 0.002 * torch.randn(rate, generator=g)]
        truth.append(clip.name[0])
    rows = _stream_rows(parts, rate)
    assert len(rows) == len(clips)  # the background noise alone prints nothing
    starts = [float(r[0]) for r in rows]
    assert starts == sorted(starts) and all(float(r[1]) > float(r[0]) for r in rows)
    assert sum(r[2] == t for r, t in zip(rows, truth)) >= len(clips) - 1, (rows, truth)
    seconds = 1.0
    for row, clip in zip(rows, clips):  # each string where it was spoken
        length = len(read_audio(clip, rate)) / rate
        assert seconds - 0.3 <= float(row[0]) <= seconds + length and float(row[1]) <= seconds + length + 0.4
        seconds += length + 1.0


def test_a_constant_offset_is_neither_speech_nor_in_the_way(data_dir, tmp_path):
    """Alone, an offset is no speech; under a word it changes nothing, for both shipped models and in a stream.
    Before the front end removed it, a 1-s constant read "7 6" and the `digits` model got 23 of 40 FSDD test clips
    with a 0.3 offset right."""
    from digitkit.data.audio import read_audio

    rate = 8000
    constant = tmp_path / "constant.wav"
    sf.write(constant, np.full(rate, 0.3, np.float32), rate, subtype="PCM_16")
    clips = sorted((data_dir / "fsdd" / "recordings").glob("*_jackson_[0-4].wav"))[::3]
    shifted = []
    for clip in clips:
        wave, sr = sf.read(clip, dtype="float32")
        shifted.append(tmp_path / clip.name)
        sf.write(shifted[-1], np.clip(wave + 0.3, -1, 1), sr, subtype="PCM_16")
    for model in ("fsdd", "digits"):
        silent, *heard = api.transcribe([constant, *shifted], model=model)
        assert silent.transcript is None and "no speech" in silent.warning, (model, silent)
        right = sum(r.transcript == p.name[0] for r, p in zip(heard, shifted))
        assert right >= len(shifted) - 1, (model, [(p.name, r.transcript) for r, p in zip(heard, shifted)])
    heard = []
    for offset in (0.0, 0.3):  # the stream printed nothing at all with the offset
        g = torch.Generator().manual_seed(0)
        parts = [offset + 0.002 * torch.randn(rate, generator=g)]
        for clip in clips[:3]:
            parts += [offset + read_audio(clip, rate), offset + 0.002 * torch.randn(rate, generator=g)]
        heard.append([row[:3] for row in _stream_rows(parts, rate)])
    assert len(heard[0]) == 3 and heard[1] == heard[0], heard


def test_stream_follows_a_background_that_rises(data_dir):
    """Recordings with near-silent edges (lucas's, about -70 dB) spliced between stretches of faint noise (-54 dB):
    each quiet edge is followed by a louder background. The floor must come back up after it, or the noise reads as
    speech and the strings run together (the floor that crept up 3 dB/s gave 1 line for these 4)."""
    from digitkit.data.audio import read_audio

    rate = 8000
    clips = sorted((data_dir / "fsdd" / "recordings").glob("*_lucas_[0-4].wav"))[::12][:4]
    g = torch.Generator().manual_seed(0)
    parts = [0.002 * torch.randn(rate, generator=g)]
    for clip in clips:
        parts += [read_audio(clip, rate), 0.002 * torch.randn(rate, generator=g)]
    rows = _stream_rows(parts, rate)
    assert [r[2] for r in rows] == [c.name[0] for c in clips], rows


def test_stream_prints_each_string_soon_after_it_is_said(data_dir):
    """A live stream fed in real time into a pipe, read from a pipe (as `arecord | digitkit transcribe --stream |
    ...` runs): each line must come within 0.5 s of the end of what was said (the 0.35 s pause that ends it, a read
    of 0.05 s, the decoding). A line written into a block-buffered pipe and not flushed came only with the next one,
    2-3 s later."""
    from digitkit.data.audio import read_audio, trim_silence

    rate = 16000
    clips = sorted((data_dir / "fsdd" / "recordings").glob("*_jackson_[0-4].wav"))[::9][:5]
    lines = live_delays([trim_silence(read_audio(c, rate), rate, pad_s=0.0)[0] for c in clips], rate)
    assert [line.split("\t")[2] for line, _ in lines] == [c.name[0] for c in clips], lines
    delays = sorted(d for _, d in lines)
    # the goal is 0.5 s; one string may be late by a busy moment of the test machine, not by seconds
    assert delays[len(delays) // 2] <= 0.5 and delays[-1] <= 1.0, delays


def test_stream_refuses_what_is_not_a_wav_stream():
    proc = run_cli("transcribe", "--stream", stdin=b"not a wav at all", timeout=120)
    assert proc.returncode == 1 and b"RIFF/WAVE" in proc.stderr and b"Traceback" not in proc.stderr
    both = run_cli("transcribe", "--stream", "x.wav")
    assert both.returncode == 2 and "give no FILES" in both.stderr
    neither = run_cli("transcribe")
    assert neither.returncode == 2 and "--stream" in neither.stderr


def test_m4a_as_phones_record_is_read(tmp_path, data_dir):
    av = pytest.importorskip("av", reason="PyAV is the m4a extra; the dev install has it")
    from digitkit.data.audio import read_audio

    clip = next((data_dir / "fsdd" / "recordings").glob("7_jackson_1.wav"))
    wave = read_audio(clip, 16000).numpy()
    with av.open(str(tmp_path / "seven.m4a"), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(wave[None].astype(np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in list(stream.encode(frame)) + list(stream.encode(None)):
            out.mux(packet)
    decoded = read_audio(tmp_path / "seven.m4a", 16000)
    assert abs(len(decoded) - len(wave)) < 2048  # AAC adds a frame of priming
    (result,) = api.transcribe([tmp_path / "seven.m4a"])
    assert result.transcript == "7"


STREAM_MEMORY = r"""
import resource, struct, sys, torch
from digitkit import api

from digitkit.data.audio import read_audio
clips = [read_audio(p, 8000) for p in sys.argv[2:]]
clips = [0.5 * c / c.abs().max() for c in clips]

class Live:
    '''A WAV stream made on the fly: faint noise, and a spoken digit every 10 s, so that nothing but the
    stream's own state can grow.'''
    def __init__(self, minutes):
        self.head = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 0xFFFFFFFF, b"WAVE", b"fmt ", 16, 1, 1, 8000, 16000, 2, 16,
                                b"data", 0xFFFFFFFF)
        self.left, self.g, self.buffer = minutes * 6, torch.Generator().manual_seed(0), b""
    def read(self, n):
        while len(self.buffer) < n and (self.head or self.left):
            if self.head:
                self.buffer, self.head = self.head, b""
                continue
            block = 0.003 * torch.randn(80000, generator=self.g)
            clip = clips[self.left % len(clips)]
            block[8000 : 8000 + len(clip)] += clip
            self.buffer += (block.clamp(-1, 1) * 32767).short().numpy().tobytes()
            self.left -= 1
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

peaks = []
for minutes in (1, int(sys.argv[1])):
    strings = sum(1 for _ in api.transcribe_stream(Live(minutes)))
    peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
print(peaks[0], peaks[1], strings)
"""


def test_stream_memory_stays_flat_over_a_long_stream(data_dir):
    import subprocess

    clips = sorted((data_dir / "fsdd" / "recordings").glob("*_theo_[0-4].wav"))[::10]
    proc = subprocess.run([sys.executable, "-c", STREAM_MEMORY, "30", *map(str, clips)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    short, long, strings = map(int, proc.stdout.split())
    assert strings >= 170  # a digit every 10 s for 30 minutes: the stream was really decoded to its end
    assert long - short < 20_000, (short, long)  # KiB: 30 minutes cost no more memory than one


def test_shipped_digits_model_by_name_hears_unseen_voices_and_rejects_other_words(data_dir, tmp_path):
    """The shipped `digits` model: FSDD test digits accepted and right, Speech Commands words that are not digits
    (speakers no training saw) mostly reported as not recognised."""
    from digitkit.weights import shipped

    ckpt = ckpt_io.load(shipped("speech", "digits"))
    assert ckpt.dataset == "digits" and ckpt.input["filler"] and ckpt.input["level_db"] == -20.0
    assert ckpt.train_config["holdout_fold"] is None and ckpt.train_state is None
    digits = sorted((data_dir / "fsdd" / "recordings").glob("*_[0-4].wav"))[::15]
    results = list(api.transcribe(digits, model="digits"))
    right = sum(r.transcript == p.name[0] for r, p in zip(results, digits))
    assert right >= len(digits) - 2, [(p.name, r.transcript) for r, p in zip(results, digits)]
    others = load_digits(data_dir, 0.0, 0).filler_test[::5]
    rejected = sum(r.transcript is None for r in api.transcribe([u.path for u in others], model="digits"))
    assert rejected >= 0.8 * len(others), (rejected, len(others))
    proc = run_cli("transcribe", "--model", "digits", "--json", str(digits[0]))
    assert proc.returncode == 0 and json.loads(proc.stdout)["transcript"] == digits[0].name[0]


def test_background_noise_continues_a_recording_at_its_level_and_colour():
    from digitkit.data.audio import background_noise

    g = torch.Generator().manual_seed(0)
    n = 6000
    for kind in ("white", "pink"):
        bed = 0.01 * (A.white_noise(16000, g) if kind == "white" else A.pink_noise(16000, g))
        recording = bed.clone()
        recording[6000:10000] += tone(0.5, level=0.5)  # a loud word in the middle: not part of the background
        made = background_noise(recording, n, seed=3)
        assert len(made) == n and torch.equal(made, background_noise(recording, n, seed=3))
        level_db = 10 * torch.log10(made.pow(2).mean() / bed.pow(2).mean())
        # the bed's level (the quietest frames run a few dB low on pink noise, whose frames vary more), not the
        # word's, 27 dB above it
        assert -6.0 < float(level_db) < 1.0, (kind, float(level_db))
        low, high = (float(torch.fft.rfft(x).abs().pow(2)[lo:hi].mean()) for x in (made[:4096],) for lo, hi in
                     ((20, 200), (1200, 2000)))
        assert (low / high > 5) == (kind == "pink"), (kind, low / high)  # the bed's spectrum too
    assert len(background_noise(torch.zeros(100), 0)) == 0
    assert float(background_noise(torch.zeros(100), 50).abs().max()) == 0.0  # digital silence stays silent


@pytest.mark.parametrize("steady", [False, True], ids=["clip", "steady"])
def test_noisy_recordings_keep_their_noise_around_the_speech(data_dir, tmp_path, steady):
    """FSDD test digits in white noise at 10 dB SNR through the shipped `digits` model. clip: the noise covers the
    short clip only, which is padded with noise like its own, not with silence (an edge no training sequence has,
    which read as words: 44 % right in `bench/speech_wild.py` before, 90 % after). steady: the noise runs through 1 s
    before and after the word, which is cut to the speech standing above the noise floor (the whole clip used to be
    the utterance: 38 % right at 10 dB SNR, 90 % now)."""
    from digitkit.data.audio import read_audio
    from digitkit.data.augment import power

    g = torch.Generator().manual_seed(1)
    paths = sorted((data_dir / "fsdd" / "recordings").glob("*_[0-4].wav"))[::10]
    for p in paths:
        wave = read_audio(p, 8000)
        if steady:
            wave = torch.cat([torch.zeros(8000), wave, torch.zeros(8000)])
            noisy = wave + A.white_noise(len(wave), g) * (power(wave[8000:-8000]) / 10) ** 0.5
        else:
            noisy = A.add_noise(wave, A.white_noise(len(wave), g), 10.0)
        sf.write(tmp_path / p.name, noisy.numpy(), 8000)
    results = list(api.transcribe([tmp_path / p.name for p in paths], model="digits"))
    right = sum(r.transcript == p.name[0] for r, p in zip(results, paths))
    assert right >= 0.8 * len(paths), [(p.name, r.transcript) for r, p in zip(results, paths)]


def test_default_model_hears_a_word_in_steady_noise(data_dir, tmp_path):
    """The shipped `fsdd` model (clean training only) with a second of steady white noise at 20 dB SNR before and
    after each word: the noise is cut away before it hears it (it read 5 % of such words right when the whole clip
    was the utterance, 55 % now); its own clean test clips are read as before."""
    from digitkit.data.audio import read_audio
    from digitkit.data.augment import power

    g = torch.Generator().manual_seed(2)
    paths = sorted((data_dir / "fsdd" / "recordings").glob("*_[0-4].wav"))[::10]
    for p in paths:
        word = read_audio(p, 8000)
        wave = torch.cat([torch.zeros(8000), word, torch.zeros(8000)])
        wave = wave + A.white_noise(len(wave), g) * (power(word) / 100) ** 0.5
        sf.write(tmp_path / p.name, wave.numpy(), 8000)
    results = list(api.transcribe([tmp_path / p.name for p in paths]))
    right = sum(r.transcript == p.name[0] for r, p in zip(results, paths))
    assert right >= 0.4 * len(paths), [(p.name, r.transcript) for r, p in zip(results, paths)]
    clean = list(api.transcribe(paths))
    assert sum(r.transcript == p.name[0] for r, p in zip(clean, paths)) >= len(paths) - 1


def test_word_times_are_the_words_real_extent(data_dir, tmp_path):
    from digitkit.data.audio import read_audio, trim_silence

    rate = 8000
    clips = [trim_silence(read_audio(p, rate), rate, pad_s=0.0)[0]
             for p in sorted((data_dir / "fsdd" / "recordings").glob("*_jackson_[0-4].wav"))[7::19][:2]]
    g = torch.Generator().manual_seed(0)
    gap = torch.zeros(int(0.6 * rate))
    wave = torch.cat([gap, clips[0], gap, clips[1], gap])
    wave = wave + 0.001 * torch.randn(len(wave), generator=g)
    sf.write(tmp_path / "two.wav", wave.numpy(), rate)
    (result,) = api.transcribe([tmp_path / "two.wav"], model="digits")
    assert len(result.words) == 2, result
    starts = [0.6, 1.2 + len(clips[0]) / rate]
    for word, start, clip in zip(result.words, starts, clips):
        assert abs(word["start"] - start) < 0.1 and abs(word["end"] - (start + len(clip) / rate)) < 0.1, (word, start)
