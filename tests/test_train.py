"""Training on real data: accuracy, exact resume, Ctrl-C safety, early stopping, output shapes."""

import json

import pytest
import torch

from conftest import assert_one_line_error, run_cli
from digitkit import api
from digitkit import checkpoint as ckpt_io
from digitkit.errors import DigitkitError
from digitkit.report import Reporter
from digitkit.training.callbacks import EarlyStopping


@pytest.mark.slow
def test_short_real_mnist_run_reaches_97_percent(small_mnist):
    assert small_mnist.metrics["test_samples"] == 10000
    assert small_mnist.metrics["test_accuracy"] >= 0.97, small_mnist.metrics


def _weights(path):
    ckpt = ckpt_io.load(path)
    return ckpt.weights, ckpt.train_tensors, ckpt.history


@pytest.mark.slow
def test_resume_is_exactly_the_uninterrupted_run(tmp_path, data_dir):
    common = dict(data_dir=data_dir, limit=2000, seed=3, patience=0, schedule="plateau")  # onecycle cannot add epochs
    straight = api.train("mnist", out=tmp_path / "straight.safetensors", epochs=3, **common)
    api.train("mnist", out=tmp_path / "split.safetensors", epochs=2, **common)
    resumed = api.train(resume=tmp_path / "split.safetensors", epochs=3, data_dir=data_dir)
    a, a_state, a_hist = _weights(straight.checkpoint)
    b, b_state, b_hist = _weights(resumed.checkpoint)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert a_state.keys() == b_state.keys() and all(torch.equal(a_state[k], b_state[k]) for k in a_state)
    strip = lambda h: [{k: v for k, v in row.items() if k != "seconds"} for row in h]
    assert strip(a_hist) == strip(b_hist)
    assert straight.metrics["test_accuracy"] == resumed.metrics["test_accuracy"]


class _CtrlCAt(Reporter):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_begin(self, epoch, epochs, steps):
        if epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_ctrl_c_keeps_last_epoch_and_resumes(tmp_path, data_dir):
    out = tmp_path / "run.safetensors"
    with pytest.raises(api.TrainingInterrupted, match="epoch 1 is saved") as err:
        api.train("mnist", out=out, data_dir=data_dir, limit=1500, epochs=3, reporter=_CtrlCAt(2))
    assert err.value.exit_code == 130
    saved = ckpt_io.load(out)
    assert saved.train_state["epoch"] == 1 and saved.train_state["status"] == "running"
    saved.build_model()  # the interrupted run's checkpoint is usable as it is
    import csv

    assert [r["epoch"] for r in csv.DictReader(open(tmp_path / "run.csv"))] == ["1"]
    done = api.train(resume=out, data_dir=data_dir)
    assert [row["epoch"] for row in done.history] == [1, 2, 3]
    assert ckpt_io.load(out).train_state["status"] == "complete"
    logged = list(csv.DictReader(open(tmp_path / "run.csv")))  # the epochs before the resume kept, as Keras' CSVLogger
    assert [r["epoch"] for r in logged] == ["1", "2", "3"]
    assert [float(r["val_accuracy"]) for r in logged] == [row["val_accuracy"] for row in done.history]


def test_ctrl_c_before_first_epoch_says_nothing_saved(tmp_path, data_dir):
    with pytest.raises(api.TrainingInterrupted, match="nothing was saved"):
        api.train("mnist", out=tmp_path / "x.safetensors", data_dir=data_dir, limit=200, epochs=1, reporter=_CtrlCAt(1))
    assert not (tmp_path / "x.safetensors").exists()


def test_resume_refuses_changed_architecture(small_mnist, data_dir):
    with pytest.raises(DigitkitError, match="cannot change batch_size"):
        api.train(resume=small_mnist.checkpoint, data_dir=data_dir, batch_size=32)


def test_resume_refuses_another_dataset(small_mnist, data_dir):
    with pytest.raises(DigitkitError, match="trained on mnist, not fashion-mnist"):
        api.train("fashion-mnist", resume=small_mnist.checkpoint, data_dir=data_dir)
    assert api.train("mnist", resume=small_mnist.checkpoint, data_dir=data_dir).metrics == small_mnist.metrics
    assert_one_line_error(run_cli("train", "cifar10", "--resume", str(small_mnist.checkpoint)), 2,
                          "trained on mnist, not cifar10")


def test_resume_of_finished_run_is_a_no_op(small_mnist, data_dir):
    before = small_mnist.checkpoint.read_bytes()
    result = api.train(resume=small_mnist.checkpoint, data_dir=data_dir)
    assert result.metrics == small_mnist.metrics and small_mnist.checkpoint.read_bytes() == before


def test_early_stopping_counts_like_keras():
    early = EarlyStopping(patience=3)
    for epoch, loss in enumerate([1.0, 0.5, 0.6, 0.7], start=1):
        early.step(loss, epoch)
    assert not early.should_stop and early.best_epoch == 2
    early.step(0.55, 5)
    assert early.should_stop
    clone = EarlyStopping(3)
    clone.load_state_dict(json.loads(json.dumps(early.state_dict())))
    assert clone.state_dict() == early.state_dict()


@pytest.mark.slow
def test_early_stopping_restores_best_weights(tmp_path, data_dir):
    """The deployed weights are the best-val-loss epoch's, not the last epoch's."""
    from digitkit.tasks.image import split_holdout as _split
    from digitkit.data.registry import get_dataset, load
    from digitkit.tasks.image import Normalization, logits_for, loss_and_accuracy

    # an LR far too high makes val loss bounce, so the best epoch is rarely the last one
    result = api.train("mnist", out=tmp_path / "es.safetensors", data_dir=data_dir, limit=2000, epochs=8, lr=0.02,
                       patience=2, lr_patience=10, augment=False, seed=0, schedule="plateau", optimizer="adam")
    losses = [r["val_loss"] for r in result.history]
    best_epoch = losses.index(min(losses)) + 1
    assert result.metrics["best_epoch"] == best_epoch
    if result.metrics["epochs_run"] < 8:
        assert result.metrics["epochs_run"] == best_epoch + 2 and "early stopping" in result.stop_reason
    spec = get_dataset("mnist")
    splits = load(spec, data_dir, allow_download=False)
    _, _, val_x, val_y = _split(splits.train_x, splits.train_y, 0.1, 0)  # validation: the full held-out split
    model = ckpt_io.load(result.checkpoint).build_model()
    val_loss, _ = loss_and_accuracy(logits_for(model, val_x, Normalization(spec.mean, spec.std)), val_y)
    assert val_loss == pytest.approx(min(losses), rel=1e-4)


def test_cli_json_and_plain_epoch_lines(tmp_path):
    out = tmp_path / "cli.safetensors"
    proc = run_cli("train", "mnist", "--limit", "600", "--epochs", "2", "--schedule", "plateau", "--out", str(out),
                   "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["checkpoint"] == str(out) and data["epochs_run"] == 2
    assert {"test_accuracy", "test_loss", "val_accuracy", "best_epoch", "train_seconds", "stop_reason"} <= data.keys()
    epoch_lines = [l for l in proc.stderr.splitlines() if l.startswith("epoch=")]
    assert len(epoch_lines) == 2 and "val_acc=" in epoch_lines[0] and "\x1b[" not in proc.stderr  # no ANSI in a pipe
    plain = run_cli("train", "--resume", str(out), "--epochs", "3", "--quiet", "--tensorboard", str(tmp_path / "tb"))
    assert plain.returncode == 0 and plain.stdout.strip() == str(out)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert [e.step for e in events.Scalars("epoch/val_accuracy")] == [3]  # the resumed epoch, on the run's epoch axis
    assert events.Scalars("batch/train_loss") and "epoch/lr" in events.Tags()["scalars"]


def test_resnet_on_cifar10_trains_and_loads(tmp_path, data_dir):
    result = api.train("cifar10", model="resnet", out=tmp_path / "r.safetensors", data_dir=data_dir, limit=300, epochs=1,
                       model_options={"stem": 8, "widths": [8, 16], "blocks": [1, 0]})
    ckpt = ckpt_io.load(result.checkpoint)
    assert ckpt.model_config["widths"] == [8, 16] and ckpt.input["preprocess"] == "rgb"
    assert ckpt.input["tta"] == ["flip", "shift"]  # the resnet recipe scores on mirrored and shifted copies
    assert api.evaluate(result.checkpoint, data_dir=data_dir).accuracy == pytest.approx(result.metrics["test_accuracy"])
    assert ckpt.metrics["dataset_note"].startswith("partial CIFAR-10")
    assert ckpt.build_model()(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_bf16_autocast_trains_on_cpu(tmp_path, data_dir):
    """The mixed-precision path (the CUDA default) runs on a CPU too, with bf16."""
    result = api.train("mnist", out=tmp_path / "bf16.safetensors", data_dir=data_dir, limit=3000, epochs=2,
                       precision="bf16", seed=4)
    assert result.metrics["test_accuracy"] > 0.9


def test_precision_is_checked(tmp_path):
    assert_one_line_error(run_cli("train", "mnist", "--precision", "fp16", "--limit", "100", "--out", str(tmp_path / "m.safetensors")),
                          2, "needs a CUDA GPU")
    assert_one_line_error(run_cli("train", "mnist", "--precision", "half", "--print-config"), 2, "--precision must be")
