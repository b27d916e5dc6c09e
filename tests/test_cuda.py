"""Every command on a CUDA GPU, in short runs on real data: each precision, presets, validation, test-time
augmentation, target and early stopping, resume across devices, evaluate, predict, transcribe, tune, --compile and
--nproc. Skipped where torch sees no GPU (CI has none); run it on a GPU machine with the README's test command or
`python -m pytest tests/test_cuda.py`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import DATA, REPO, assert_one_line_error, run_cli

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

EXAMPLES = sorted((REPO / "docs" / "examples").glob("digit-*.png"))


def cli_json(*args: str) -> dict | list:
    proc = run_cli(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    return lines[0] if len(lines) == 1 else lines


def train(tmp_path: Path, name: str, *args: str, device: str = "cuda") -> dict:
    return cli_json("train", *args, "--device", device, "--out", str(tmp_path / name))


@pytest.mark.parametrize("precision", ["auto", "fp32", "bf16", "fp16"])
def test_mnist_each_precision(tmp_path, precision):
    """The defaults (validation split, made-up non-digits, one-cycle AdamW at the GPU's batch size) in every
    precision: the first command a user types. 12,000 images: 2 epochs at batch 512 are 48 steps (96 % on a CPU)."""
    m = train(tmp_path, "m.safetensors", "mnist", "--limit", "12000", "--epochs", "2", "--precision", precision)
    assert m["epochs_run"] == 2 and m["val_accuracy"] > 0.9 and m["test_accuracy"] > 0.9, m


def test_fast_preset_is_gpu_sized_and_accurate(tmp_path):
    for preset in ("fast", "default"):
        shown = run_cli("train", "mnist", "--preset", preset, "--device", "cuda", "--print-config")
        assert "batch_size = 512" in shown.stdout, shown.stdout
    m = train(tmp_path, "fast.safetensors", "mnist", "--preset", "fast")
    assert m["test_accuracy"] >= 0.985, m


def test_target_accuracy_and_early_stopping(tmp_path):
    m = train(tmp_path, "t.safetensors", "mnist", "--limit", "6000", "--epochs", "20", "--target-accuracy", "0.9")
    assert m["epochs_run"] < 20 and "target accuracy" in m["stop_reason"], m
    m = train(tmp_path, "p.safetensors", "mnist", "--limit", "600", "--epochs", "40", "--patience", "1", "--lr", "0.02")
    assert m["epochs_run"] < 40 and "early stopping" in m["stop_reason"], m


def test_cifar_resnet_with_test_time_augmentation(tmp_path):
    from digitkit import checkpoint

    m = train(tmp_path, "c.safetensors", "cifar10", "--model", "resnet", "--limit", "2000", "--epochs", "2")
    assert checkpoint.load(tmp_path / "c.safetensors").input["tta"] == ["flip", "shift"]
    e = cli_json("evaluate", str(tmp_path / "c.safetensors"), "--device", "cuda")
    assert abs(e["accuracy"] - m["test_accuracy"]) < 2e-3, (e["accuracy"], m["test_accuracy"])


def test_resume_moves_between_cpu_and_gpu(tmp_path):
    """A plateau schedule, since a one-cycle run refuses a longer --epochs on resume; no made-up non-digits, which
    slow a run at a constant LR (on a CPU these settings reach 98 % after the three epochs, 76 % with them)."""
    out = tmp_path / "r.safetensors"
    train(tmp_path, "r.safetensors", "mnist", "--limit", "12000", "--epochs", "1", "--schedule", "plateau", "--no-outliers",
          device="cpu")
    gpu = cli_json("train", "--resume", str(out), "--epochs", "2", "--device", "cuda")
    cpu = cli_json("train", "--resume", str(out), "--epochs", "3", "--device", "cpu")
    assert gpu["epochs_run"] == 2 and cpu["epochs_run"] == 3 and cpu["test_accuracy"] > 0.9, (gpu, cpu)


def test_evaluate_predict_transcribe_match_the_cpu():
    gpu, cpu = (cli_json("evaluate", "--device", d) for d in ("cuda", "cpu"))
    assert abs(gpu["accuracy"] - cpu["accuracy"]) <= 2e-3 and gpu["accuracy"] > 0.99
    gpu, cpu = (cli_json("predict", *map(str, EXAMPLES), "--device", d) for d in ("cuda", "cpu"))
    assert [p["label"] for p in gpu] == [p["label"] for p in cpu] == [str(d) for d in range(10)]
    clips = [str(p) for p in sorted((DATA / "fsdd" / "recordings").glob("*_theo_0.wav"))]
    gpu, cpu = (cli_json("transcribe", *clips, "--device", d) for d in ("cuda", "cpu"))
    assert [t["transcript"] for t in gpu] == [t["transcript"] for t in cpu]


def test_speech_training_and_evaluation(tmp_path):
    m = train(tmp_path, "s.safetensors", "fsdd", "--limit", "300", "--epochs", "3",
              "-o", "hidden=32", "-o", "layers=1", "-o", "conv_channels=32")
    assert m["epochs_run"] == 3 and 0 <= m["test_sequence_wer"], m
    e = cli_json("evaluate", str(tmp_path / "s.safetensors"), "--device", "cuda")
    assert abs(e["accuracy"] - m["test_accuracy"]) < 0.01, (e, m)


def test_tune(tmp_path):
    proc = run_cli("tune", "mnist", "--trials", "2", "--epochs", "1", "--limit", "1000", "--device", "cuda",
                   "--out", str(tmp_path / "tune"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "tune" / "best.toml").is_file()


def test_compile(tmp_path):
    """48 steps at the GPU's batch 512: the same run on a CPU (--batch-size 512 --lr 0.006 --compile) reached 97 %.
    3,000 images for one epoch are 6 such steps: 33 % without --compile on an H100, too few to tell anything."""
    m = train(tmp_path, "k.safetensors", "mnist", "--limit", "12000", "--epochs", "2", "--compile")
    assert m["test_accuracy"] > 0.9, m


def test_nproc(tmp_path):
    args = ("train", "mnist", "--limit", "2000", "--epochs", "1", "--nproc", "2", "--device", "cuda", "--out", str(tmp_path / "d.safetensors"))
    if torch.cuda.device_count() < 2:
        assert_one_line_error(run_cli(*args), 2, "needs 2 GPUs")
    else:
        assert run_cli(*args).returncode == 0
