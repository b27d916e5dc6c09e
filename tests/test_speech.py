"""Speech: real FSDD and Speech Commands splits, a short real training run, transcription of single words and
connected strings, espeak-ng clips end to end, and the transcribe command's outputs and bad inputs."""

import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import assert_one_line_error, require, run_cli
from digitkit import api
from digitkit import checkpoint as ckpt_io
from digitkit.data.speech import load_fsdd, load_speechcommands
from digitkit.errors import DataError, DigitkitError
from digitkit.weights import shipped

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def test_fsdd_standard_split(data_dir):
    splits = load_fsdd(data_dir, val_split=0.1, seed=0)
    assert len(splits.test) == 300 and len(splits.train) + len(splits.val) == 2700 and len(splits.val) == 270
    assert all(int(u.path.stem.split("_")[2]) < 5 for u in splits.test)
    assert splits.vocab == [str(d) for d in range(10)] and len(splits.speakers) == 6


def test_fsdd_speaker_holdout(data_dir):
    splits = load_fsdd(data_dir, val_split=0.0, seed=0, holdout_speaker="theo")
    assert len(splits.test) == 500 and {u.speaker for u in splits.test} == {"theo"}
    assert "theo" not in {u.speaker for u in splits.train}
    with pytest.raises(DataError, match="speakers are: george"):
        load_fsdd(data_dir, 0.1, 0, holdout_speaker="nobody")


def test_speechcommands_split_by_speaker(data_dir):
    splits = load_speechcommands(data_dir)
    assert splits.vocab == ["down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes"]
    assert len(splits.train) + len(splits.val) + len(splits.test) == 1500 and "speaker hash" in splits.note
    groups = [{u.speaker for u in part} for part in (splits.train, splits.val, splits.test)]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert load_speechcommands(data_dir, ["yes", "no"]).vocab == ["yes", "no"]
    with pytest.raises(DataError, match="no Speech Commands word"):
        load_speechcommands(data_dir, ["banana"])


def test_speechcommands_uses_its_own_lists(tmp_path, data_dir):
    (tmp_path / "SpeechCommands").mkdir()
    (tmp_path / "SpeechCommands" / "speech_commands_v0.01").symlink_to((data_dir / "SpeechCommands" / "speech_commands_v0.01").resolve())
    splits = load_speechcommands(tmp_path)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (205, 44, 51) and len(splits.vocab) == 30


def test_missing_speech_data_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="Free Spoken Digit Dataset not found"):
        api.train("fsdd", data_dir=tmp_path, out=tmp_path / "x.safetensors")


def test_speech_options_are_checked(tmp_path, data_dir):
    with pytest.raises(DigitkitError, match="does not fit fsdd"):
        api.train("fsdd", model="cnn", data_dir=data_dir, out=tmp_path / "x.safetensors")
    with pytest.raises(DigitkitError, match="--words is for speechcommands"):
        api.train("fsdd", words=["yes"], data_dir=data_dir, out=tmp_path / "x.safetensors")


@pytest.fixture(scope="session")
def tiny_fsdd(tmp_path_factory, data_dir):
    """A few seconds of real FSDD training: enough to exercise every speech code path, not to recognize well."""
    out = tmp_path_factory.mktemp("speech") / "fsdd-tiny.safetensors"
    return api.train("fsdd", out=out, data_dir=data_dir, limit=200, epochs=4, seed=0,
                     model_options={"hidden": 32, "layers": 1, "conv_channels": 32})


def test_speech_training_lowers_the_loss(tiny_fsdd):
    """Epochs 1-2 train on the known alignment, 3-4 with CTC: each phase lowers its own loss."""
    history = tiny_fsdd.history
    assert history[1]["train_loss"] < history[0]["train_loss"]
    assert history[3]["train_loss"] < history[2]["train_loss"]
    m = tiny_fsdd.metrics
    assert m["test_samples"] == 300 and m["test_sequences"] == 300 and 0 <= m["test_sequence_wer"]


@pytest.mark.slow
def test_short_fsdd_run_recognizes_held_out_recordings(tmp_path, data_dir):
    """The real recipe on all of FSDD's training recordings, cut to 20 epochs (about 2.5 minutes on 2 cores)."""
    result = api.train("fsdd", out=tmp_path / "fsdd.safetensors", data_dir=data_dir, epochs=20)
    m = result.metrics
    assert m["test_samples"] == 300
    assert m["test_accuracy"] >= 0.90, m
    assert m["test_sequence_wer"] <= 0.10, m


def test_gru_variant_trains_and_resumes(tmp_path, data_dir):
    """Also with batches grouped by length (--bucket), as speech trains on CUDA."""
    out = tmp_path / "gru.safetensors"
    api.train("fsdd", model="gru", out=out, data_dir=data_dir, limit=300, epochs=2, bucket=True,
              model_options={"hidden": 32, "layers": 1})
    ckpt = ckpt_io.load(out)
    assert ckpt.model_config["rnn"] == "gru" and ckpt.input["kind"] == "speech" and ckpt.classes[0] == "0"
    assert ckpt.train_config["bucket"] is True
    assert ckpt.input["feature_norm"] == ckpt.train_config["feature_norm"] == "cmn"  # new runs' features
    assert api.train(resume=out, data_dir=data_dir).metrics == ckpt.metrics  # finished: nothing to do


@pytest.fixture(scope="module")
def test_recordings(data_dir):
    return sorted((data_dir / "fsdd" / "recordings").glob("*_[0-4].wav"))


def test_transcription_has_times_in_order_across_segments(tmp_path, test_recordings, tiny_fsdd):
    from digitkit.data.audio import read_audio

    rate = 8000
    parts = []
    for i in range(20):  # about a minute: words with long pauses, decoded in 10 s segments
        parts += [read_audio(test_recordings[(i * 37) % len(test_recordings)], rate), torch.zeros(int(2.5 * rate))]
    sf.write(tmp_path / "long.wav", torch.cat(parts).numpy(), rate)
    (result,) = api.transcribe([tmp_path / "long.wav"], model=tiny_fsdd.checkpoint, segment_seconds=10)
    starts = [w["start"] for w in result.words]
    assert starts == sorted(starts) and all(w["end"] > w["start"] for w in result.words)
    assert all(0 <= w["confidence"] <= 1 and w["word"] in "0123456789" for w in result.words)


@pytest.fixture(scope="module")
def espeak_digits(tmp_path_factory):
    require(shutil.which("espeak-ng") is not None, "espeak-ng", "espeak-ng")
    folder = tmp_path_factory.mktemp("espeak")
    for d, word in enumerate(DIGIT_WORDS):
        subprocess.run(["espeak-ng", "-w", str(folder / f"{d}.wav"), word], check=True)
    return [folder / f"{d}.wav" for d in range(10)]


def test_espeak_clips_end_to_end(espeak_digits):
    """A voice the shipped model never heard, at espeak's own rate (22,050 Hz): assert the output's form, not
    the words (the README reports how many it gets right)."""
    proc = run_cli("transcribe", *map(str, espeak_digits))
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert [r[0] for r in rows] == [str(p) for p in espeak_digits]
    for path, transcript, confidence in rows:
        assert (transcript == "?" or set(transcript.split()) <= set("0123456789")) and 0 <= float(confidence) <= 1


def test_transcribe_cli_json_stdin_and_bad_files(tmp_path, test_recordings, tiny_fsdd):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "notaudio.wav").write_text("hello")
    sf.write(tmp_path / "silent.wav", np.zeros(8000, np.float32), 8000)
    listing = "\n".join([str(test_recordings[0]), str(tmp_path / "empty.wav"), str(tmp_path / "notaudio.wav"),
                         str(tmp_path / "silent.wav"), str(tmp_path / "missing.wav")]) + "\n"
    proc = run_cli("transcribe", "-", "--json", "--model", str(tiny_fsdd.checkpoint), stdin=listing)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    objs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [o["path"] for o in objs] == [str(test_recordings[0]), str(tmp_path / "silent.wav")]
    first = objs[0]
    assert {"path", "transcript", "confidence", "words"} <= set(first)
    assert all(set(w) == {"word", "start", "end", "confidence"} for w in first["words"])
    assert first["transcript"] in (" ".join(w["word"] for w in first["words"]), None)
    assert objs[1]["transcript"] is None and "no speech" in objs[1]["warning"]
    errors = [l for l in proc.stderr.splitlines() if l.startswith("digitkit: error:")]
    assert len(errors) == 3 and any("empty file" in l for l in errors) and any("no such file" in l for l in errors)
    assert any(l.startswith("digitkit: warning:") and "silent.wav" in l for l in proc.stderr.splitlines())


def test_image_model_cannot_transcribe(tmp_path, test_recordings):
    proc = run_cli("transcribe", "--model", str(shipped("image")), str(test_recordings[0]))
    assert proc.returncode == 2 and "use `digitkit predict`" in proc.stderr


def test_evaluate_speech_checkpoint(tiny_fsdd):
    proc = run_cli("evaluate", str(tiny_fsdd.checkpoint), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["samples"] == 300 and data["sequences"] == 300 and data["sequence_wer"] >= 0
    assert abs(data["accuracy"] - tiny_fsdd.metrics["test_accuracy"]) < 1e-6
    assert abs(data["sequence_wer"] - tiny_fsdd.metrics["test_sequence_wer"]) < 1e-6
    assert data["classes"][-1] == "(other)" and len(data["per_class"]) == 10
    assert sum(map(sum, data["confusion"])) == 300


def test_shipped_speech_model_is_the_default_and_describes_itself(test_recordings):
    ckpt = ckpt_io.load(shipped("speech"))
    assert ckpt.dataset == "fsdd" and ckpt.train_state is None and ckpt.input["kind"] == "speech"
    assert ckpt.metrics["test_accuracy"] >= 0.97 and ckpt.metrics["test_sequence_wer"] <= 0.10
    picks = test_recordings[::60]  # a spread of digits and speakers from the test split
    proc = run_cli("transcribe", *map(str, picks))
    assert proc.returncode == 0, proc.stderr
    heard = [line.split("\t")[1] for line in proc.stdout.splitlines()]
    truth = [p.name.split("_")[0] for p in picks]
    assert sum(h == t for h, t in zip(heard, truth)) >= len(picks) - 1, list(zip(heard, truth))


def test_transcribe_plot_draws_each_clip(tmp_path, test_recordings):
    import shutil

    twin = tmp_path / "other" / test_recordings[0].name  # the same name from another folder gets its own picture
    twin.parent.mkdir()
    shutil.copy(test_recordings[0], twin)
    proc = run_cli("transcribe", "--plot", str(tmp_path / "plots"), str(test_recordings[0]), str(twin))
    assert proc.returncode == 0, proc.stderr
    stem = test_recordings[0].stem
    drawn = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert drawn == [f"{stem}-2.png", f"{stem}.png"] and all((tmp_path / "plots" / n).stat().st_size > 5000 for n in drawn)
    (tmp_path / "file").write_text("")
    assert_one_line_error(run_cli("transcribe", "--plot", str(tmp_path / "file" / "x"), str(twin)), 2, "--plot")


def test_shipped_model_transcribes_digit_strings_joined_from_held_out_recordings(tmp_path, test_recordings):
    """Phone-number-like clips (3-7 digits) made from test-split recordings, which training never saw."""
    from digitkit.ctc import word_error_rate
    from digitkit.data.audio import read_audio
    from digitkit.data.sequences import join_words

    g = torch.Generator().manual_seed(7)
    paths, truths = [], []
    for i in range(24):
        count = int(torch.randint(3, 8, (), generator=g))
        picks = [test_recordings[int(j)] for j in torch.randint(0, len(test_recordings), (count,), generator=g)]
        wave = join_words([read_audio(p, 8000) for p in picks], 8000, generator=g)
        sf.write(tmp_path / f"string{i}.wav", wave.numpy(), 8000, subtype="PCM_16")
        paths.append(str(tmp_path / f"string{i}.wav"))
        truths.append([p.name.split("_")[0] for p in picks])
    proc = run_cli("transcribe", "--json", *paths)
    assert proc.returncode == 0, proc.stderr
    # the words heard, whether or not the clip passed --min-confidence (rejection is tested in test_wild.py)
    heard = [[w["word"] for w in json.loads(line)["words"]] for line in proc.stdout.splitlines()]
    assert word_error_rate(truths, heard) <= 0.10, list(zip(truths, heard))


def test_resampled_stereo_copies_transcribe_the_same(tmp_path, test_recordings):
    """The same recordings as 44.1 kHz stereo (left and right at different levels) and 16-bit 8 kHz mono."""
    import torchaudio.functional as AF

    picks = test_recordings[5::50]
    copies = []
    for p in picks:
        mono, rate = sf.read(p, dtype="float32")
        wide = AF.resample(torch.from_numpy(mono), rate, 44100).numpy()
        copies.append(tmp_path / p.name)
        sf.write(copies[-1], np.stack([wide * 0.9, wide * 0.6], axis=1), 44100, subtype="PCM_24")
    original = run_cli("transcribe", *map(str, picks))
    stereo = run_cli("transcribe", *map(str, copies))
    assert original.returncode == 0 and stereo.returncode == 0, stereo.stderr
    a = [line.split("\t")[1] for line in original.stdout.splitlines()]
    b = [line.split("\t")[1] for line in stereo.stdout.splitlines()]
    assert sum(x == y for x, y in zip(a, b)) >= len(a) - 1, list(zip(a, b))
