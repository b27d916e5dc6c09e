"""Checkpoints: round trip, atomic writes, and one clear error for foreign, corrupt or mismatched files."""

import json

import pytest
import torch
from safetensors.torch import save_file

from conftest import assert_one_line_error, run_cli
from digitkit import checkpoint as ckpt_io
from digitkit.errors import CheckpointError
from digitkit.models.cnn import CNN, CNNConfig
from digitkit.models.registry import config_to_dict


def _checkpoint(**config):
    cfg = CNNConfig(filters=(8, 16), dense=32, **config)
    model = CNN(cfg).eval()
    ckpt = ckpt_io.Checkpoint(
        model_name="cnn", model_config=config_to_dict(cfg), dataset="mnist", classes=[str(i) for i in range(10)],
        input={"channels": 1, "size": 28, "mean": [0.1307], "std": [0.3081], "preprocess": "mnist"},
        weights=model.state_dict(), metrics={"test_accuracy": 0.5}, versions=ckpt_io.versions(),
    )
    return model, ckpt


def test_round_trip(tmp_path):
    model, ckpt = _checkpoint()
    path = ckpt_io.save(tmp_path / "m.safetensors", ckpt)
    loaded = ckpt_io.load(path)
    assert loaded.model_name == "cnn" and loaded.dataset == "mnist" and loaded.metrics == {"test_accuracy": 0.5}
    assert loaded.versions["torch"] == torch.__version__ and loaded.train_state is None
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(loaded.build_model()(x), model(x))
    assert not list(tmp_path.glob("*.part"))


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    _, ckpt = _checkpoint()
    path = ckpt_io.save(tmp_path / "m.safetensors", ckpt)
    before = path.read_bytes()
    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "save_file", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(CheckpointError, match="cannot write checkpoint .*No space left"):
        ckpt_io.save(path, ckpt)
    assert path.read_bytes() == before and not list(tmp_path.glob("*.part"))


def test_foreign_safetensors(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(path), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="not a digitkit checkpoint"):
        ckpt_io.load(path)


def test_corrupt_and_truncated(tmp_path):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01not safetensors at all" * 10)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        ckpt_io.load(garbage)
    _, ckpt = _checkpoint()
    good = ckpt_io.save(tmp_path / "good.safetensors", ckpt)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError):
        ckpt_io.load(cut)
    assert_one_line_error(run_cli("evaluate", str(cut)), 2, "cut.safetensors")
    assert_one_line_error(run_cli("predict", "--model", str(garbage), "x.png"), 2, "corrupt or truncated")


def test_architecture_mismatch(tmp_path):
    _, ckpt = _checkpoint()
    ckpt.model_config["filters"] = [8, 24]  # metadata no longer matches the stored weights
    path = ckpt_io.save(tmp_path / "bad.safetensors", ckpt)
    with pytest.raises(CheckpointError, match="do not match the cnn architecture"):
        ckpt_io.load(path).build_model()


def test_newer_format_refused(tmp_path):
    _, ckpt = _checkpoint()
    path = ckpt_io.save(tmp_path / "m.safetensors", ckpt)
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    meta["format_version"] = "99"
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match="newer than this digitkit"):
        ckpt_io.load(path)


def test_metadata_is_self_describing(small_mnist):
    loaded = ckpt_io.load(small_mnist.checkpoint)
    assert loaded.classes == [str(i) for i in range(10)]
    assert loaded.input["mean"] == [0.1307] and loaded.input["preprocess"] == "mnist"
    assert loaded.train_config["limit"] == 12000 and loaded.train_config["epochs"] == 3
    assert len(loaded.history) == 3 and loaded.metrics["test_accuracy"] == small_mnist.metrics["test_accuracy"]
    assert loaded.train_state["status"] == "complete"
    assert json.dumps(loaded.model_config)  # plain JSON


def test_saved_file_is_not_private(tmp_path):
    import os
    import stat

    _, ckpt = _checkpoint()
    old = os.umask(0o022)
    try:
        path = ckpt_io.save(tmp_path / "m.safetensors", ckpt)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


@pytest.mark.parametrize("key, edit, needle", [
    ("input", lambda v: {**v, "size": 100000}, "size 8-512"),
    ("input", lambda v: {**v, "std": [0.0]}, "std must be positive"),
    ("input", lambda v: {**v, "mean": [1.0, 2.0]}, "mean must be 1 finite numbers"),
    ("input", lambda v: {**v, "temperature": float("nan")}, "temperature"),
    ("input", lambda v: {**v, "min_confidence": 7}, "min_confidence"),
    ("input", lambda v: {"kind": "speech", "sample_rate": -8000, "n_mels": 40}, "sample_rate"),
    ("model_config", lambda v: {**v, "dense": 2e8}, "dense=200000000.0 is out of range"),
    ("classes", lambda v: ["only"], "2 to 10,000 names"),
    ("classes", lambda v: [[] for _ in range(10)], "2 to 10,000 names"),
    ("input", lambda v: "[" * 100_000 + "]" * 100_000, "damaged"),
    ("format_version", lambda v: "9" * 5000, "newer than this digitkit"),
])
def test_tampered_metadata_is_one_error_before_anything_is_built(tmp_path, key, edit, needle):
    """#19: checkpoint metadata is checked at the boundary; before, each of these was a traceback (a KeyError, a
    RecursionError, a 4 GB allocation)."""
    _, ckpt = _checkpoint()
    path = ckpt_io.save(tmp_path / "m.safetensors", ckpt)
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    if key == "format_version":
        meta[key] = edit(meta[key])
    else:
        value = edit(json.loads(meta[key]))
        meta[key] = value if isinstance(value, str) else json.dumps(value)
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match=needle):
        ckpt_io.load(path)
