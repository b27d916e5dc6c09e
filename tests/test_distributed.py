"""Multi-process training: torchrun with gloo on loopback (via --nproc) matches a 1-process run with the same
total batch, only rank 0 writes and prints, and checkpoints move between process counts."""

from __future__ import annotations

import json

import pytest

from conftest import assert_one_line_error, run_cli

pytestmark = pytest.mark.slow

RUN = ("mnist", "--limit", "12000", "--epochs", "3", "--seed", "3", "--json")


def train(tmp_path, name, *args, nproc=1):
    out = tmp_path / name
    out.mkdir()
    proc = run_cli("train", *args, "--out", str(out / "model.safetensors"), "--nproc", str(nproc), env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_two_processes_match_one_and_only_rank_zero_writes(tmp_path):
    one_dir, one = train(tmp_path, "one", *RUN)
    two_dir, two = train(tmp_path, "two", *RUN, nproc=2)
    lines = two.stdout.strip().splitlines()
    assert len(lines) == 1  # rank 0's JSON only
    a, b = json.loads(one.stdout), json.loads(lines[0])
    assert b["epochs_run"] == 3 and "2 processes" in two.stderr
    assert abs(a["test_accuracy"] - b["test_accuracy"]) <= 0.01, (a["test_accuracy"], b["test_accuracy"])
    assert sum(line.startswith("epoch=") for line in two.stderr.splitlines()) == 3  # one row per epoch, not per rank
    assert sorted(p.name for p in two_dir.iterdir()) == ["model.csv", "model.safetensors"]  # rank 0 writes, alone


def test_checkpoints_resume_across_process_counts(tmp_path):
    short = ("mnist", "--limit", "3000", "--epochs", "1", "--seed", "2", "--schedule", "plateau", "--json")
    two_dir, _ = train(tmp_path, "two", *short, nproc=2)
    resumed = run_cli("train", "--resume", str(two_dir / "model.safetensors"), "--epochs", "2", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["epochs_run"] == 2
    one_dir, _ = train(tmp_path, "one", *short)
    resumed = run_cli("train", "--resume", str(one_dir / "model.safetensors"), "--epochs", "2", "--json", "--nproc", "2",
                      env={"OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["epochs_run"] == 2


def test_nproc_must_be_positive():
    assert_one_line_error(run_cli("train", "mnist", "--nproc", "0"), 2, "--nproc must be at least 1")


def test_speech_trains_with_two_processes(tmp_path):
    out, proc = train(tmp_path, "speech", "fsdd", "--limit", "240", "--epochs", "2", "-o", "hidden=32", "-o", "layers=1",
                      "-o", "conv_channels=32", "--json", nproc=2)
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    assert m["epochs_run"] == 2 and m["test_samples"] == 300
    assert sorted(p.name for p in out.iterdir()) == ["model.csv", "model.safetensors"]
