"""Hostile and faulty inputs end in one line and a meaningful exit code, and never cost the user's work: config
values out of range, a run that diverges, signals, outputs that are not regular files, a full disk, NaN audio."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import DATA, REPO, assert_one_line_error, draw_digit, run_cli
from digitkit import checkpoint as ckpt_io
from digitkit import config
from digitkit.errors import CheckpointError, DigitkitError
from digitkit.weights import shipped


@pytest.mark.parametrize("field, value, needle", [
    ("lr", float("inf"), "--lr must be a positive finite number"), ("lr", float("nan"), "--lr must be"),
    ("weight_decay", -0.1, "--weight-decay"), ("weight_decay", float("nan"), "--weight-decay"),
    ("lr_factor", 2.0, "--lr-factor must be in (0, 1)"), ("label_smoothing", 2.0, "--label-smoothing"),
    ("grad_clip", -1.0, "--grad-clip"), ("grad_clip", float("nan"), "--grad-clip"), ("seed", 2**63 - 1, "--seed"),
    ("min_lr", float("inf"), "--min-lr"), ("max_words", 0, "--max-words"), ("optimizer", "lion", "--optimizer must be adam, adamw or sgd"),
])
def test_config_values_are_checked_before_training(field, value, needle):
    with pytest.raises(DigitkitError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        config.resolve("mnist", {field: value})


def test_bad_config_value_is_one_line_from_the_cli():
    assert_one_line_error(run_cli("train", "mnist", "--lr", "inf"), 2, "--lr must be a positive finite number")


def test_diverging_run_stops_with_one_line_and_saves_no_nan_weights(tmp_path):
    out = tmp_path / "nan.safetensors"
    proc = run_cli("train", "mnist", "--limit", "640", "--epochs", "3", "--lr", "1e30", "--out", str(out))
    assert_one_line_error(proc, 2, "training diverged in epoch 1")
    assert "nothing was saved" in proc.stderr and not out.exists()


def test_sigterm_saves_the_last_epoch_and_says_how_to_resume(tmp_path):
    out = tmp_path / "run.safetensors"
    env = {**os.environ, "DIGITKIT_DATA": str(DATA)}
    proc = subprocess.Popen([sys.executable, "-m", "digitkit", "train", "mnist", "--limit", "2000", "--epochs", "100",
                             "--patience", "0", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    deadline = time.monotonic() + 300
    while not out.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr and f"digitkit train --resume {out}" in stderr
    assert ckpt_io.load(out).train_state["epoch"] >= 1


def test_out_that_is_no_regular_file_is_refused(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert_one_line_error(run_cli("train", "mnist", "--epochs", "1", "--out", str(fifo)), 2, "not a regular file")
    link = tmp_path / "link.safetensors"
    link.symlink_to(tmp_path / "real.safetensors")
    assert_one_line_error(run_cli("train", "mnist", "--epochs", "1", "--out", str(link)), 2, "is a symbolic link")
    assert link.is_symlink() and not (tmp_path / "real.safetensors").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_folder_nothing_can_be_created_in_is_refused_before_training(tmp_path):
    """Under /proc even root can create nothing, though os.access says it may: the folder is probed with a real
    file, so the run is refused in a line before the data is read."""
    quick = ("train", "mnist", "--epochs", "1", "--limit", "100")
    assert_one_line_error(run_cli(*quick, "--out", "/proc/m.safetensors"), 2, "cannot write checkpoint /proc/m.safetensors")
    proc = run_cli(*quick, "--out", str(tmp_path / "m.safetensors"), "--tensorboard", "/proc/tb")
    assert_one_line_error(proc, 2, "--tensorboard /proc/tb")
    assert not (tmp_path / "m.safetensors").exists() and not list(tmp_path.glob(".digitkit-probe*"))


def test_evaluate_a_directory_says_so(tmp_path):
    assert_one_line_error(run_cli("evaluate", str(tmp_path)), 2, "is a directory, not a checkpoint file")


def test_full_disk_is_one_error_not_a_safetensors_traceback(tmp_path, monkeypatch):
    import safetensors.torch

    def full(*args, **kwargs):
        raise safetensors.SafetensorError("No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(CheckpointError, match="cannot write checkpoint .*No space left"):
        ckpt_io.save(tmp_path / "x.safetensors", ckpt_io.load(shipped("image")))
    assert list(tmp_path.iterdir()) == []  # no temp file left behind


def test_nan_audio_is_that_files_error_and_the_others_still_print(tmp_path):
    good = DATA / "fsdd" / "recordings" / "3_theo_0.wav"
    bad = tmp_path / "nan.wav"
    samples = np.zeros(8000, dtype=np.float32)
    samples[100:200] = np.nan
    sf.write(bad, samples, 8000, subtype="FLOAT")
    proc = run_cli("transcribe", str(good), str(bad), str(good))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert [line.split("\t")[0] for line in proc.stdout.splitlines()] == [str(good), str(good)]
    assert "NaN or infinite samples" in proc.stderr


def test_segment_seconds_must_be_finite():
    clip = str(DATA / "fsdd" / "recordings" / "3_theo_0.wav")
    for value in ("nan", "inf"):
        assert_one_line_error(run_cli("transcribe", clip, "--segment-seconds", value), 2, "--segment-seconds")


def test_second_run_on_one_out_is_refused_and_stale_parts_go(tmp_path):
    from digitkit.atomic import exclusive

    out = tmp_path / "run.safetensors"
    with exclusive(out):  # as a first run holds it while it trains
        assert_one_line_error(run_cli("train", "mnist", "--limit", "200", "--epochs", "1", "--out", str(out)), 2,
                              "another digitkit run is writing")
    assert not out.exists()
    stale = tmp_path / "run.safetensors.k1ll3d.part"  # left by a writer killed with kill -9
    stale.write_bytes(b"\0" * 1000)
    assert run_cli("train", "mnist", "--limit", "200", "--epochs", "1", "--out", str(out)).returncode == 0
    assert not stale.exists() and not (tmp_path / ".run.safetensors.lock").exists() and out.is_file()


def test_unusable_paths_are_their_own_errors_in_a_batch(tmp_path):
    good = str(REPO / "docs" / "examples" / "digit-4.png")
    long_name = str(tmp_path / ("x" * 300 + ".png"))
    proc = run_cli("predict", good, long_name, good)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert [line.split("\t")[0] for line in proc.stdout.splitlines()] == [good, good]
    assert "File name too long" in proc.stderr
    proc = run_cli("predict", "-", stdin=f"{good}\nbad\0name.png\n{good}\n")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stdout.splitlines()) == 2 and "not a usable path" in proc.stderr


def test_checkpoint_with_nan_weights_is_refused(tmp_path):
    import dataclasses

    import torch

    ckpt = ckpt_io.load(shipped("image"))
    weights = {k: (torch.full_like(v, float("nan")) if v.is_floating_point() else v) for k, v in ckpt.weights.items()}
    bad = tmp_path / "nan.safetensors"
    ckpt_io.save(bad, dataclasses.replace(ckpt, weights=weights))
    assert_one_line_error(run_cli("predict", "--model", str(bad), str(REPO / "docs" / "examples" / "digit-1.png")), 2,
                          "NaN or infinite weights")


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    from PIL import Image

    eight = np.asarray(Image.open(draw_digit(tmp_path / "d.png", "7", ink=110, paper=255)), dtype=np.uint16)
    deep = tmp_path / "deep.png"
    Image.fromarray(eight * 257).save(deep)  # a 16-bit grayscale PNG: mid-grey ink on white
    assert Image.open(deep).mode.startswith("I")
    proc = run_cli("predict", str(deep))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\t")[1] == "7"


def test_tune_refuses_a_journal_that_is_not_one(tmp_path):
    bad = tmp_path / "garbage.log"
    bad.write_text('{"op_code": 0}\n{"something": "else"}\n')
    proc = run_cli("tune", "mnist", "--storage", f"journal:{bad}", "--trials", "1", "--limit", "100", "--epochs", "1",
                   "--out", str(tmp_path / "run"))
    assert_one_line_error(proc, 2, "is not an Optuna journal file")


def test_evaluate_plot_into_a_folder_and_without_a_suffix_says_what_it_wrote(tmp_path):
    proc = run_cli("evaluate", "--plot", str(tmp_path), "--curves", str(tmp_path / "curves"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "confusion.png").is_file() and (tmp_path / "curves.png").is_file()
    assert f"wrote {tmp_path / 'confusion.png'}" in proc.stderr and f"wrote {tmp_path / 'curves.png'}" in proc.stderr


def test_image_between_pillows_two_limits_is_refused_not_decoded(tmp_path):
    """A PNG header claiming 9,000 x 8,000 pixels (72 M: over the limit, under the twice-the-limit at which Pillow itself
    refuses): one line, no 'DecompressionBombWarning' on stderr, no gigabytes decoded; the good file still prints."""
    import io
    import struct
    import zlib

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (1, 1), 255).save(buf, "PNG")
    png = bytearray(buf.getvalue())
    header = struct.pack(">II", 9000, 8000) + bytes(png[24:29])  # width, height, then depth, colour, methods as they were
    png[16:29] = header
    png[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    (tmp_path / "huge.png").write_bytes(bytes(png))
    good = draw_digit(tmp_path / "good.png", "7")
    proc = run_cli("predict", "huge.png", str(good), cwd=tmp_path)
    assert_one_line_error(proc, 1, "huge.png: image is too large")
    assert "Warning" not in proc.stderr and proc.stdout.startswith(str(good))


def test_sample_rates_coprime_with_the_models_are_resampled_in_bounded_memory(tmp_path):
    """44,101 Hz to 8 kHz has no common factor: the exact polyphase filter bank took 6.4 GB for a 7 KB clip. Now it
    is read from the nearest 100 Hz, in a moment; a rate no recording has is one line."""
    from digitkit.data.audio import read_audio, resample_rate

    assert resample_rate(44_100, 8_000) == 44_100 and resample_rate(44_101, 8_000) == 44_100
    tone = (0.3 * np.sin(np.arange(44_101) * 2 * np.pi * 440 / 44_101)).astype(np.float32)
    sf.write(tmp_path / "odd.wav", tone, 44_101)
    start = time.monotonic()
    wave = read_audio(tmp_path / "odd.wav", 8_000)
    assert time.monotonic() - start < 10 and abs(len(wave) - 8_000) <= 20
    sf.write(tmp_path / "absurd.wav", tone[:1000], 2**31 - 1)
    good = tmp_path / "good.wav"
    sf.write(good, tone[:8000], 44_100)
    proc = run_cli("transcribe", "absurd.wav", str(good), cwd=tmp_path)
    assert_one_line_error(proc, 1, "sample rate 2,147,483,647 Hz is outside")
    assert proc.stdout.startswith(str(good))


def test_kill_9_never_corrupts_the_checkpoint_or_leaves_temp_files(tmp_path):
    """A short run of bench/kill_soak.py (50 kills there): SIGKILL just after an epoch's checkpoint write began,
    each time a checkpoint that loads, and no temp file once the next run has finished."""
    sys.path.insert(0, str(REPO / "bench"))
    from kill_soak import soak

    counts = soak(3, tmp_path, seed=1, log=lambda line: None)
    assert counts["loaded"] + counts["absent"] == 3 and counts["loaded"] >= 1
