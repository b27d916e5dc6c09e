"""The device rules a CPU can check: helpers run where the model is, GPU-sized presets only on CUDA, optimizer state
that moves between devices, and clear errors for a device that is not there. tests/test_cuda.py runs the rest on
a GPU."""

from __future__ import annotations

import pytest
import torch

from conftest import assert_one_line_error, run_cli
from digitkit import config
from digitkit.checkpoint import restore_optimizer, training_tensors
from digitkit.config import TrainConfig
from digitkit.device import model_device, pick_device
from digitkit.errors import DigitkitError
from digitkit.training import distributed
from digitkit.tasks.image import ImageBatches, Normalization, logits_for, loss_and_accuracy
from digitkit.training.loop import make_optimizer


class _Recorder(torch.nn.Module):
    """A linear classifier that remembers the device of every input it saw."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
        self.seen: set[torch.device] = set()

    def forward(self, x):
        self.seen.add(x.device)
        return self.fc(x.flatten(1))


def test_helpers_take_the_device_from_the_model():
    model = _Recorder()
    x = torch.randint(0, 255, (10, 1, 2, 2), dtype=torch.uint8)
    logits = logits_for(model, x, Normalization((0.5,), (0.25,)), batch_size=4)
    assert model.seen == {torch.device("cpu")} and logits.device == model_device(model) and logits.shape == (10, 3)
    loss, acc = loss_and_accuracy(logits, torch.zeros(10, dtype=torch.long))
    assert loss > 0 and 0 <= acc <= 1
    with torch.device("meta"):
        assert model_device(torch.nn.Linear(2, 2)).type == "meta"
    assert model_device(torch.nn.ReLU()) == torch.device("cpu")  # no weights: the CPU


def test_image_batches_hold_every_tensor_on_their_device():
    x, y = torch.zeros(8, 1, 4, 4, dtype=torch.uint8), torch.zeros(8, dtype=torch.long)
    task = ImageBatches(x, y, x[:2], y[:2], Normalization((0.0,), (1.0,)), None, torch.device("meta"))
    assert {t.device.type for t in (task.train_x, task.train_y, task.val_x, task.val_y)} == {"meta"}


def test_gpu_sized_preset_only_on_cuda():
    cpu = config.resolve("mnist", {"preset": "fast"}, "cpu")
    cuda = config.resolve("mnist", {"preset": "fast"}, "cuda")
    assert (cpu.batch_size, cpu.lr) == (64, 4e-3)
    assert (cuda.batch_size, cuda.lr) == (512, 1e-2) and cuda.epochs == cpu.epochs
    assert config.resolve("mnist", {"preset": "fast", "batch_size": 128}, "cuda").batch_size == 128  # flags win


def test_default_recipe_is_gpu_sized_only_where_measured():
    """`digitkit train mnist` on CUDA: the same recipe at a GPU-sized batch; a dataset without a measured CUDA entry
    (Fashion-MNIST, whose default recipe is another) keeps its CPU settings."""
    cpu, cuda = (config.resolve("mnist", {}, d) for d in ("cpu", "cuda"))
    assert (cpu.batch_size, cpu.lr, cuda.batch_size, cuda.lr) == (128, 3e-3, 512, 6e-3)
    assert {**cpu.to_dict(), "batch_size": 0, "lr": 0} == {**cuda.to_dict(), "batch_size": 0, "lr": 0}
    assert config.resolve("fashion-mnist", {}, "cuda") == config.resolve("fashion-mnist", {}, "cpu")
    # speech: the same recipe, its batches grouped by length on a GPU; `digits` groups them on a CPU too (its
    # sequences run from 0.5 to 7 s, and a CPU trains on the padded batch)
    cpu, cuda = (config.resolve("fsdd", {}, d) for d in ("cpu", "cuda"))
    assert not cpu.bucket and cuda.bucket and {**cpu.to_dict(), "bucket": True} == cuda.to_dict()
    cpu, cuda = (config.resolve("digits", {}, d) for d in ("cpu", "cuda"))
    assert cpu.bucket and cpu == cuda


def test_print_config_shows_a_gpu_runs_settings_anywhere():
    """`--print-config --device cuda` shows what a GPU run would use, also on a machine without one."""
    proc = run_cli("train", "mnist", "--device", "cuda", "--print-config")
    assert proc.returncode == 0 and "batch_size = 512" in proc.stdout, proc.stderr
    assert "batch_size = 128" in run_cli("train", "mnist", "--device", "cpu", "--print-config").stdout


def test_optimizer_state_keeps_this_devices_implementation():
    """A checkpoint written by a fused CUDA optimizer resumes on a CPU with the CPU's own update, and back."""
    model = torch.nn.Linear(3, 2)
    optimizer = make_optimizer(model, TrainConfig(optimizer="adam"))
    assert not optimizer.param_groups[0].get("fused")  # fused kernels are for CUDA parameters
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    tensors, meta = training_tensors(model, optimizer)
    for group in meta["param_groups"]:
        group["fused"] = True  # as a CUDA run saves it
    fresh = make_optimizer(model, TrainConfig(optimizer="adam"))
    restore_optimizer(fresh, tensors, meta)
    assert not fresh.param_groups[0].get("fused")
    assert torch.equal(fresh.state[model.weight]["exp_avg"], optimizer.state[model.weight]["exp_avg"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_asked_for_without_a_gpu():
    with pytest.raises(DigitkitError, match="no CUDA GPU"):
        pick_device("cuda")
    assert_one_line_error(run_cli("train", "mnist", "--device", "cuda", "--epochs", "1"), 2, "no CUDA GPU")


def test_more_cuda_processes_than_gpus(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(DigitkitError, match="2 processes on CUDA need as many GPUs, and this machine has 1"):
        distributed.local_device(torch.device("cuda"))
    assert distributed.local_device(torch.device("cpu")) == torch.device("cpu")


def test_restored_optimizer_state_is_laid_out_like_its_parameters():
    """Checkpoints store contiguous tensors; CUDA's fused Adam refuses state whose strides differ from a
    channels-last parameter's (seen on an H100 when resuming a CPU checkpoint)."""
    model = torch.nn.Conv2d(3, 8, 3).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, TrainConfig(optimizer="adam"))
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    optimizer.step()
    tensors, meta = training_tensors(model, optimizer)
    tensors = {k: v.contiguous() for k, v in tensors.items()}  # as safetensors writes them
    fresh = make_optimizer(model, TrainConfig(optimizer="adam"))
    restore_optimizer(fresh, tensors, meta)
    for key in ("exp_avg", "exp_avg_sq"):
        restored = fresh.state[model.weight][key]
        assert restored.stride() == model.weight.stride() and torch.equal(restored, optimizer.state[model.weight][key])
