"""Audio in: formats, rates, channels, silence trimming, bounded-memory segments, and every bad-file path."""

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from digitkit.ctc import edit_distance, greedy_decode, word_error_rate
from digitkit.data.audio import DCBlocker, audio_blocks, read_audio, segments, trim_silence, without_offset
from digitkit.data.sequences import join_words
from digitkit.errors import InputError


def tone(seconds: float, rate: int, freq: float = 440.0, level: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * math.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("subtype,ext", [("PCM_U8", "wav"), ("PCM_16", "wav"), ("PCM_24", "wav"), ("PCM_32", "wav"),
                                         ("FLOAT", "wav"), ("PCM_16", "flac"), ("PCM_24", "flac")])
def test_formats_and_bit_depths(tmp_path, subtype, ext):
    path = tmp_path / f"a.{ext}"
    sf.write(path, tone(0.5, 8000), 8000, subtype=subtype)
    wave = read_audio(path, 8000)
    assert wave.dtype == torch.float32 and wave.shape == (4000,)
    assert torch.allclose(wave, torch.from_numpy(tone(0.5, 8000)), atol=0.02)


def test_stereo_is_mixed_and_rates_resampled(tmp_path):
    left, right = tone(1.0, 44100, 300), tone(1.0, 44100, 300, level=0.1)
    sf.write(tmp_path / "s.wav", np.stack([left, right], 1), 44100)
    wave = read_audio(tmp_path / "s.wav", 16000)
    assert wave.shape == (16000,)
    expected = torch.from_numpy(tone(1.0, 16000, 300, level=0.3))
    assert torch.allclose(wave[100:-100], expected[100:-100], atol=0.02)  # the mean of the channels, at 16 kHz


def test_bad_files(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("RIFF? no, just text")
    sf.write(tmp_path / "zero.wav", np.zeros(0, np.float32), 8000)
    sf.write(tmp_path / "whole.wav", tone(1.0, 8000), 8000, subtype="PCM_16")
    data = (tmp_path / "whole.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    (tmp_path / "folder.wav").mkdir()
    cases = {"empty.wav": "empty file", "text.wav": "not an audio file", "zero.wav": "zero-length",
             "cut.wav": "truncated", "folder.wav": "is a directory", "missing.wav": "no such file"}
    for name, reason in cases.items():
        with pytest.raises(InputError, match=reason):
            read_audio(tmp_path / name, 8000)


def test_a_constant_offset_is_removed_alike_in_any_blocks(tmp_path):
    """An offset as cheap microphones record it: gone whether the file is read whole or in blocks (the filter's state
    carries across them), the speech band kept, no step where the recording starts, and alone it is silence. The
    reader itself keeps the samples as they are."""
    rate = 8000
    path = tmp_path / "offset.wav"
    sf.write(path, tone(2.0, rate, freq=300.0, level=0.1) + 0.3, rate, subtype="FLOAT")
    assert abs(float(read_audio(path, rate).mean()) - 0.3) < 1e-3
    whole = DCBlocker(rate)(read_audio(path, rate))
    pieces = torch.cat(list(without_offset(audio_blocks(path, rate, block_seconds=0.137), rate)))
    assert torch.allclose(whole, pieces, atol=1e-6)
    assert abs(float(whole[800:].mean())) < 1e-3
    assert abs(float(whole[800:].pow(2).mean().sqrt()) - 0.1 / math.sqrt(2)) < 0.002
    assert float(whole[:80].abs().max()) < 0.15
    sf.write(path, np.full(rate, 0.3, np.float32), rate, subtype="PCM_16")
    assert len(trim_silence(DCBlocker(rate)(read_audio(path, rate)), rate)[0]) == 0


def test_trim_silence(tmp_path):
    rate = 8000
    wave = torch.from_numpy(np.concatenate([np.zeros(rate), tone(0.5, rate), np.zeros(rate // 2)]).astype(np.float32))
    trimmed, cut = trim_silence(wave, rate)
    assert 0.9 <= cut <= 1.0 and 0.5 <= len(trimmed) / rate <= 0.7
    silent, _ = trim_silence(torch.zeros(rate) + 1e-5 * torch.randn(rate), rate)
    assert len(silent) == 0


def test_trim_cuts_steady_noise_but_not_a_close_cut_words_edges():
    rate = 8000
    g = torch.Generator().manual_seed(0)
    word = torch.from_numpy(tone(0.5, rate)) * torch.hann_window(rate // 2)  # rises and decays like a word
    steady = torch.cat([torch.zeros(rate), word, torch.zeros(rate)])
    steady = steady + 0.01 * torch.randn(len(steady), generator=g)  # about 25 dB below the word, throughout
    plain, _ = trim_silence(steady, rate, pad_s=0.0)
    assert len(plain) > 2 * rate  # within 35 dB of the loudest frame: the noise counts as speech
    cut_noise, start = trim_silence(steady, rate, pad_s=0.0, above_floor_db=8.0)
    assert 1.0 <= start <= 1.15 and len(cut_noise) / rate <= 0.5
    # a word cut close, as FSDD's are: no background held for 0.3 s, and its quiet edges (10 dB below its middle)
    # are not taken for a noise floor
    close = torch.from_numpy(tone(0.5, rate)) * (0.3 + 0.7 * torch.hann_window(rate // 2))
    assert torch.equal(trim_silence(close, rate, above_floor_db=8.0)[0], trim_silence(close, rate)[0])


def test_segments_are_bounded_and_cut_in_quiet_places(tmp_path):
    rate = 8000
    bursts = [np.concatenate([tone(0.4, rate, 300 + 50 * i), np.zeros(int(0.9 * rate), np.float32)]) for i in range(60)]
    signal = np.concatenate(bursts)  # about 78 s of words and pauses
    sf.write(tmp_path / "long.wav", signal, rate)
    pieces = list(segments(audio_blocks(tmp_path / "long.wav", rate, block_seconds=5.0), rate))
    assert len(pieces) > 10 and max(len(p) for p, _ in pieces) <= 7 * rate  # never much more than a block
    assert torch.allclose(torch.cat([p for p, _ in pieces]), torch.from_numpy(signal), atol=1e-4)  # nothing lost
    for piece, offset in pieces[1:]:
        at = int(round(offset * rate))
        assert np.abs(signal[max(0, at - 40) : at + 40]).max() < 1e-3  # every cut falls in a pause


def test_greedy_ctc_decode_and_wer():
    blank, a, b = 0, 1, 2
    frames = [blank, a, a, blank, a, b, b, blank]
    probs = torch.full((len(frames), 3), 0.05)
    for t, tok in enumerate(frames):
        probs[t, tok] = 0.9
    words = greedy_decode(probs.log())
    assert [w.token for w in words] == [a, a, b]
    assert [(w.start_frame, w.end_frame) for w in words] == [(1, 3), (4, 5), (5, 7)]
    assert all(abs(w.confidence - 0.9) < 1e-6 for w in words)
    assert edit_distance([1, 2, 3], [1, 3]) == 1 and edit_distance([], [4, 4]) == 2
    assert word_error_rate([[1, 2, 3, 4]], [[1, 2, 5, 4, 6]]) == 0.5


def test_join_words_is_reproducible():
    words = [torch.ones(800), torch.ones(400)]
    a = join_words(words, 8000, generator=torch.Generator().manual_seed(5))
    b = join_words(words, 8000, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and len(a) >= 1200 + 0.05 * 8000


def test_feature_norms_keep_or_erase_which_bands_a_sound_is_strong_in():
    """cmn (new runs) keeps the bands a vowel is strong in stronger than the others; cmvn (older checkpoints) scales
    every band of the utterance to the same deviation, so a low and a high tone differ only in their noise."""
    from digitkit.data.audio import LogMel

    rate = 8000
    g = torch.Generator().manual_seed(0)

    def clip(freq: float) -> torch.Tensor:
        sound = torch.cat([torch.zeros(rate // 2), torch.from_numpy(tone(0.5, rate, freq))])
        return sound + 1e-3 * torch.randn(len(sound), generator=g)

    low, high = clip(400.0), clip(2400.0)
    waves, lengths = torch.stack([low, high]), torch.tensor([len(low), len(high)])
    cmn, _ = LogMel(rate, 40, "cmn")(waves, lengths)
    cmvn, _ = LogMel(rate, 40, "cmvn")(waves, lengths)
    for feats in (cmn, cmvn):
        assert feats.mean(1).abs().max() < 1e-4  # each band's mean is taken off either way
    assert torch.allclose(cmvn.std(1, unbiased=False), torch.ones(2, 40), atol=1e-3)
    spread = cmn.std(1, unbiased=False)  # how far each band swings between the quiet half and the tone
    assert (spread.max(1).values > 3 * spread.median(1).values).all()
    assert int(spread[0].argmax()) < 20 <= int(spread[1].argmax())
    # during the tone, the strongest band is where the tone is
    assert int(cmn[0, -20].argmax()) < 20 <= int(cmn[1, -20].argmax())
    with pytest.raises(ValueError):
        LogMel(rate, 40, "per-speaker")


def test_checkpoints_from_before_feature_norm_keep_their_features():
    """A stored config or checkpoint input without a feature norm was trained with cmvn, and is read, evaluated,
    resumed and repeated with cmvn; new runs default to cmn."""
    from types import SimpleNamespace

    from digitkit import checkpoint
    from digitkit.config import TrainConfig
    from digitkit.data.audio import LogMel
    from digitkit.weights import shipped

    assert TrainConfig().feature_norm == "cmn"
    assert TrainConfig.from_dict({"dataset": "fsdd"}).feature_norm == "cmvn"
    assert TrainConfig.from_dict({"dataset": "fsdd", "feature_norm": "cmn"}).feature_norm == "cmn"
    fsdd = checkpoint.load(shipped("speech", "fsdd"))
    assert fsdd.input["feature_norm"] == "cmn" and LogMel.of(fsdd).norm == "cmn"
    older = {k: v for k, v in fsdd.input.items() if k != "feature_norm"}  # what checkpoints held before the option
    assert LogMel.of(SimpleNamespace(input=older)).norm == "cmvn"


def test_a_checkpoint_with_an_unknown_feature_norm_is_refused(tmp_path):
    """A norm this digitkit does not know would give features the weights never saw: refused on load, in one line."""
    import dataclasses

    import pytest

    from digitkit import checkpoint
    from digitkit.errors import CheckpointError
    from digitkit.weights import shipped

    fsdd = checkpoint.load(shipped("speech", "fsdd"))
    checkpoint.save(tmp_path / "odd.safetensors", dataclasses.replace(fsdd, input={**fsdd.input, "feature_norm": "pcen"}))
    with pytest.raises(CheckpointError, match="feature_norm must be one of cmn, cmvn"):
        checkpoint.load(tmp_path / "odd.safetensors")
