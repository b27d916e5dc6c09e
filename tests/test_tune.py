"""`digitkit tune` on real MNIST subsets: a study finishes and writes a config train accepts, pruning stops a
bad trial, a killed study resumes from its SQLite file, and two processes share one study exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib

import pytest

from conftest import DATA, assert_one_line_error, run_cli

pytestmark = pytest.mark.slow

SPACE = """replace = true
[filters_1]
choices = [8, 16]
[filters_2]
choices = [16, 32]
[lr]
low = 1e-6
high = 1e-2
log = true
"""
QUICK = ("--limit", "1000", "--epochs", "1", "--model", "cnn")


def space(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text(SPACE)
    return str(path)


def load(out):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name="mnist-cnn", storage=f"sqlite:///{out / 'study.db'}")


def finished(study):
    return [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]


def test_study_finishes_prunes_and_writes_a_config_train_accepts(tmp_path):
    import optuna

    out = tmp_path / "tune"
    out.mkdir()
    study = optuna.create_study(study_name="mnist-cnn", storage=f"sqlite:///{out / 'study.db'}", direction="maximize")
    for lr in (5e-3, 4e-3, 3e-3, 1e-6):  # three sound trials, then one that cannot learn: the median pruner must stop it
        study.enqueue_trial({"filters_1": 8, "filters_2": 16, "lr": lr})
    proc = run_cli("tune", "mnist", "--trials", "4", "--limit", "1000", "--epochs", "2", "--space", space(tmp_path),
                   "--out", str(out), "--pruner", "median", "--plot", str(tmp_path / "plots"), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    states = [t["state"] for t in result["trials"]]
    assert states == ["complete", "complete", "complete", "pruned"], result["trials"]
    assert result["trials"][3]["epochs"] == 1  # stopped after its first epoch
    best = result["best"]
    assert best["value"] == max(t["value"] for t in result["trials"][:3])
    config = tomllib.loads((out / "best.toml").read_text())
    assert config["model_options"]["filters"] == [8, 16] and config["lr"] == pytest.approx(best["params"]["lr"], rel=1e-12)
    assert "limit" not in config and config["epochs"] == 16  # the full run's budget (mnist's default), not the trials'
    assert (tmp_path / "plots" / "optimization-history.png").stat().st_size > 1000
    assert "trial 0 epoch 1/2: val accuracy" in proc.stderr and "trial 2 epoch 2/2" in proc.stderr  # no silent trials
    assert "parameter importances from 3 finished trial(s)" in proc.stderr
    again = run_cli("train", "--config", str(out / "best.toml"), "--print-config")
    assert again.returncode == 0 and tomllib.loads(again.stdout) == config
    table = run_cli("tune", "mnist", "--trials", "4", "--out", str(out), "--space", space(tmp_path), *QUICK)
    assert table.returncode == 0 and "best: trial" in table.stdout  # nothing left to run: just the table


def test_killed_study_resumes_from_its_sqlite_file(tmp_path):
    out = tmp_path / "tune"
    args = [sys.executable, "-m", "digitkit", "tune", "mnist", "--trials", "3", "--out", str(out), "--space", space(tmp_path),
            "--limit", "3000", "--epochs", "2", "--pruner", "none", "-q"]
    env = {**os.environ, "DIGITKIT_DATA": str(DATA)}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            time.sleep(0.3)
            if (out / "study.db").exists():
                try:
                    states = [t.state.name for t in load(out).trials]
                except Exception:  # the file exists, but its schema or the study is still being created
                    continue
                if "COMPLETE" in states and "RUNNING" in states:
                    break
        else:
            pytest.fail("the study never got a finished trial and a running one")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = load(out)
    assert len(finished(before)) < 3
    resumed = run_cli("tune", "mnist", "--trials", "3", "--out", str(out), "--space", space(tmp_path),
                      "--limit", "3000", "--epochs", "2", "--pruner", "none")
    assert resumed.returncode == 0, resumed.stderr
    assert "left running by a process that is gone" in resumed.stderr
    after = load(out)
    assert len(finished(after)) == 3
    assert [t.state.name for t in after.trials].count("FAIL") == 1  # the killed trial, re-run by the new process
    assert (out / "best.toml").exists()


def test_two_processes_share_one_study_without_losing_or_repeating_trials(tmp_path):
    out = tmp_path / "tune"
    out.mkdir()
    args = [sys.executable, "-m", "digitkit", "tune", "mnist", "--trials", "5", "--out", str(out), "--space", space(tmp_path),
            *QUICK, "--pruner", "none", "-q"]
    env = {**os.environ, "DIGITKIT_DATA": str(DATA), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    study = load(out)
    done = finished(study)
    assert len(done) == 5
    assert len({t.number for t in done}) == 5
    assert len({tuple(sorted(t.params.items())) for t in done}) == 5  # no trial's parameters ran twice
    assert len({t.user_attrs["pid"] for t in done}) == 2  # both processes did work


def test_bad_tune_options_are_one_line_errors(tmp_path):
    assert_one_line_error(run_cli("tune", "mnist", "--sampler", "bayes", "--out", str(tmp_path)), 2, "--sampler must be")
    assert_one_line_error(run_cli("tune", "mnist", "--trials", "0", "--out", str(tmp_path)), 2, "--trials must be")
    bad = tmp_path / "bad.toml"
    bad.write_text("[lr]\nlow = 0.1\n")
    assert_one_line_error(run_cli("tune", "mnist", "--space", str(bad), "--out", str(tmp_path)), 2, "needs choices")
    bad.write_text("[wings]\nchoices = [1, 2]\n")
    assert_one_line_error(run_cli("tune", "mnist", "--space", str(bad), "--out", str(tmp_path)), 2, "wings is neither")
    bad.write_text("[lr]\nlow = 0.001\nhigh = 0.01\n")
    assert_one_line_error(run_cli("tune", "mnist", "--sampler", "grid", "--space", str(bad), "--out", str(tmp_path)), 2, "grid needs")
    assert_one_line_error(run_cli("tune", "mnist", "--storage", "nonsense", "--out", str(tmp_path)), 2, "--storage takes")


def test_tuning_a_speech_model(tmp_path):
    path = tmp_path / "speech.toml"
    path.write_text("replace = true\n[hidden]\nchoices = [16, 32]\n[lr]\nlow = 1e-3\nhigh = 5e-3\nlog = true\n")
    proc = run_cli("tune", "fsdd", "--trials", "2", "--limit", "200", "--epochs", "1", "--space", str(path),
                   "--out", str(tmp_path / "tune"), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert [t["state"] for t in result["trials"]] == ["complete", "complete"]
    config = tomllib.loads((tmp_path / "tune" / "best.toml").read_text())
    assert config["dataset"] == "fsdd" and config["model"] == "lstm" and config["model_options"]["hidden"] in (16, 32)


def test_a_new_study_starts_from_the_default_config(tmp_path):
    proc = run_cli("tune", "mnist", "--trials", "1", "--limit", "500", "--epochs", "1", "--out", str(tmp_path / "t"), "--json")
    assert proc.returncode == 0, proc.stderr
    (trial,) = json.loads(proc.stdout)["trials"]
    assert trial["params"] == {"filters_1": 32, "filters_2": 64, "filters_3": 128, "convs_per_block": 1, "dense": 128,
                               "dropout_conv": 0.25, "dropout_dense": 0.5, "lr": 0.003, "optimizer": "adamw",
                               "batch_size": 128}


def test_a_study_whose_every_trial_fails_the_same_way_stops(tmp_path, monkeypatch):
    """A dataset that cannot be had fails every trial with one error: the study stops after SAME_FAILURES of them
    with that error in one line, instead of trying new values for ever."""
    from digitkit import api
    from digitkit.errors import DataError, DigitkitError
    from digitkit.tuning import study

    calls = []

    def unavailable(*args, **kwargs):
        calls.append(kwargs)
        raise DataError("MNIST not found in /nowhere and the download failed")

    monkeypatch.setattr(api, "train", unavailable)
    with pytest.raises(DigitkitError, match=r"last 3 trials failed the same way.*MNIST not found"):
        study.tune("mnist", trials=20, epochs=1, limit=100, out=tmp_path / "t", space=space(tmp_path), device="cpu")
    assert len(calls) == study.SAME_FAILURES


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_tuning_on_an_absent_gpu_fails_before_any_trial(tmp_path):
    proc = run_cli("tune", "mnist", "--device", "cuda", "--trials", "1", "--out", str(tmp_path / "t"))
    assert_one_line_error(proc, 2, "no CUDA GPU")
    assert "trial" not in proc.stderr
