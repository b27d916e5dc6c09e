"""The task registry: one place decides what kind of data a dataset name or a checkpoint is, and a checkpoint of
the wrong kind for a command is refused with one line."""

from __future__ import annotations

import dataclasses

import pytest

from conftest import REPO, assert_one_line_error, run_cli
from digitkit import checkpoint as ckpt_io
from digitkit import tasks
from digitkit.errors import DataError
from digitkit.weights import shipped

IMAGE_CKPT, SPEECH_CKPT = shipped("image"), shipped("speech")
DIGIT = str(REPO / "docs" / "examples" / "digit-3.png")
CLIP = str(REPO.parent / "shared" / "datasets" / "fsdd" / "recordings" / "3_theo_0.wav")


@pytest.mark.parametrize("name, kind, canonical", [("MNIST", "image", "mnist"), ("Fashion_MNIST", "image", "fashion-mnist"),
                                                   ("cifar-10", "image", "cifar10"), ("FSDD", "speech", "fsdd"),
                                                   ("speech-commands", "speech", "speechcommands")])
def test_dataset_names_pick_one_task(name, kind, canonical):
    task, found = tasks.for_dataset(name)
    assert (task.kind, found) == (kind, canonical)


def test_unknown_dataset_lists_every_kind():
    with pytest.raises(DataError, match="choose one of: mnist, fashion-mnist, cifar10, fsdd, speechcommands"):
        tasks.for_dataset("imagenet")


def test_the_cli_names_every_dataset_the_registry_has():
    from digitkit.cli import DATASET_NAMES

    registry = [n for task in tasks._tasks() for n in task.dataset_names()]
    assert DATASET_NAMES.replace(" or ", ", ").split(", ") == registry
    assert f"{registry[-1]} (not needed" in " ".join(run_cli("train", "--help").stdout.split())


def test_speech_model_refused_by_predict():
    proc = run_cli("predict", "--model", str(SPEECH_CKPT), DIGIT)
    assert_one_line_error(proc, 2, "speech model cannot be used by `digitkit predict`; use `digitkit transcribe`")
    assert proc.stdout == ""


def test_image_model_refused_by_transcribe():
    proc = run_cli("transcribe", "--model", str(IMAGE_CKPT), CLIP)
    assert_one_line_error(proc, 2, "image model cannot be used by `digitkit transcribe`; use `digitkit predict`")


@pytest.mark.parametrize("source, dataset", [(IMAGE_CKPT, "fsdd"), (SPEECH_CKPT, "mnist")])
def test_evaluate_refuses_a_checkpoint_naming_the_other_kinds_dataset(tmp_path, source, dataset):
    ckpt = ckpt_io.load(source)
    edited = tmp_path / "edited.safetensors"
    ckpt_io.save(edited, dataclasses.replace(ckpt, dataset=dataset))
    for command in (("evaluate", str(edited)), ("predict", "--model", str(edited), DIGIT),
                    ("transcribe", "--model", str(edited), CLIP)):
        assert_one_line_error(run_cli(*command), 2, f"checkpoint cannot be of dataset '{dataset}'")
