"""`digitkit export`: every model family to ONNX and TorchScript, checked against PyTorch on real test inputs, with
the metadata a user needs inside; the exported files run by `predict` / `transcribe --model` and by onnxruntime
alone; failures are one line and leave nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, REPO, assert_one_line_error, run_cli


@pytest.fixture(autouse=True)
def onnx_extra():
    import importlib.util

    if not (importlib.util.find_spec("onnx") and importlib.util.find_spec("onnxruntime")):
        pytest.fail('the onnx extra is missing: run scripts/test, or pip install -e ".[dev]"')

EXAMPLES = sorted((REPO / "docs" / "examples").glob("digit-*.png"))
FSDD = DATA / "fsdd" / "recordings"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, data_dir):
    """A ResNet and a GRU trained for a moment on real data: the families no shipped model covers."""
    from digitkit import api

    folder = tmp_path_factory.mktemp("tiny")
    resnet = api.train("cifar10", model="resnet", out=folder / "resnet.safetensors", data_dir=data_dir, epochs=1,
                       limit=256, batch_size=64, model_options={"stem": 8, "widths": [16, 16, 32]}, test=False)
    gru = api.train("fsdd", model="gru", out=folder / "gru.safetensors", data_dir=data_dir, epochs=1, limit=64,
                    model_options={"hidden": 16, "conv_channels": 16}, test=False)
    return {"resnet": resnet.checkpoint, "gru": gru.checkpoint}


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_shipped_models_agree_on_their_whole_test_sets(fmt, tmp_path, data_dir):
    """The shipped CNN on all 10,000 MNIST test images and the shipped LSTM on all 300 FSDD test recordings."""
    from digitkit import api

    for name, count in (("mnist", 10_000), ("fsdd", 300)):
        result = api.export(name, format=fmt, out=tmp_path / f"{name}.{fmt}", data_dir=data_dir)
        assert result.inputs_checked == count and result.decisions_agree == count
        assert result.max_prob_diff < 1e-4 and Path(result.path).stat().st_size == result.size_bytes


@pytest.mark.parametrize("family", ["resnet", "gru"])
def test_every_family_exports_to_both_formats(family, tiny, tmp_path, data_dir):
    from digitkit import api

    for fmt in ("onnx", "torchscript"):
        result = api.export(tiny[family], format=fmt, out=tmp_path / f"{family}.{fmt}", data_dir=data_dir, limit=200)
        assert result.model == family and result.inputs_checked == 200 and result.decisions_agree == 200


def test_onnx_file_is_usable_without_digitkit(tmp_path, data_dir):
    """onnxruntime alone, a batch size never traced, the metadata's constants: the same labels as digitkit's."""
    import onnxruntime as ort
    import torch

    from digitkit import api, checkpoint
    from digitkit.data.registry import get_dataset, load

    path = api.export("mnist", out=tmp_path / "m.onnx", data_dir=data_dir, limit=100).path
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    info, classes, io = json.loads(meta["input"]), json.loads(meta["classes"]), json.loads(meta["io"])
    assert classes == [str(d) for d in range(10)] and "images" in io and "temperature" in info
    x = load(get_dataset("mnist"), data_dir).test_x[:37].numpy().astype(np.float32) / 255.0
    x = (x - info["mean"][0]) / info["std"][0]
    (logits,) = session.run(None, {"images": x})
    model = checkpoint.load(REPO / "digitkit/weights/mnist-cnn.safetensors").build_model()
    with torch.inference_mode():  # the PyTorch model's own answer for the same images
        expected = model(torch.from_numpy(x)).argmax(1).numpy()
    assert logits.shape == (37, 10) and (logits.argmax(1) == expected).all()


def test_predict_and_transcribe_take_exported_models(tmp_path):
    for name, fmt in (("mnist", "onnx"), ("fsdd", "onnx"), ("fsdd", "torchscript")):
        proc = run_cli("export", name, "--format", fmt, "--limit", "50", "--out", str(tmp_path / f"{name}.{fmt}"))
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == str(tmp_path / f"{name}.{fmt}")
    plain = run_cli("predict", *map(str, EXAMPLES))
    exported = run_cli("predict", "--model", str(tmp_path / "mnist.onnx"), *map(str, EXAMPLES))
    assert exported.returncode == 0, exported.stderr
    labels = lambda p: [line.split("\t")[1] for line in p.stdout.splitlines()]
    assert labels(exported) == labels(plain) == [str(d) for d in range(10)]
    clips = [str(FSDD / f"{d}_theo_3.wav") for d in (0, 4, 7)]
    reference = run_cli("transcribe", "--json", *clips)
    for fmt in ("onnx", "torchscript"):
        proc = run_cli("transcribe", "--json", "--model", str(tmp_path / f"fsdd.{fmt}"), *clips)
        assert proc.returncode == 0, proc.stderr
        got = [json.loads(line) for line in proc.stdout.splitlines()]
        want = [json.loads(line) for line in reference.stdout.splitlines()]
        assert [g["transcript"] for g in got] == [w["transcript"] for w in want] == ["0", "4", "7"]
        assert all(abs(g["confidence"] - w["confidence"]) < 1e-3 for g, w in zip(got, want))


def test_a_disagreeing_export_fails_and_writes_nothing(tmp_path, data_dir, monkeypatch):
    import torch

    from digitkit import api, export
    from digitkit.errors import DigitkitError

    real = export.load_exported

    def off_by_a_little(path, fmt):
        model, meta = real(path, fmt)
        return (lambda x: model(x) + torch.linspace(0, 3, 10)), meta  # pushes some answers to a higher class

    monkeypatch.setattr(export, "load_exported", off_by_a_little)
    with pytest.raises(DigitkitError, match="disagrees with PyTorch"):
        api.export("mnist", out=tmp_path / "m.onnx", data_dir=data_dir, limit=500)
    assert list(tmp_path.iterdir()) == []


def test_export_errors_are_one_line(tmp_path):
    onnx_path = tmp_path / "m.onnx"
    assert run_cli("export", "--limit", "10", "--out", str(onnx_path)).returncode == 0
    assert_one_line_error(run_cli("export", str(onnx_path)), 2, "already an exported model")
    assert_one_line_error(run_cli("export", "--out", str(tmp_path)), 2, "is a folder")
    assert_one_line_error(run_cli("export", "--limit", "0"), 2, "--limit")
    if Path("/proc/self").is_dir():  # a folder nothing can be created in, even by root
        assert_one_line_error(run_cli("export", "--limit", "10", "--out", "/proc/m.onnx"), 2, "cannot write /proc/m.onnx")
    assert run_cli("export", "--format", "tflite").returncode == 2
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    assert_one_line_error(run_cli("predict", "--model", str(tmp_path / "junk.onnx"), str(EXAMPLES[0])), 2, "not an ONNX model")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    assert_one_line_error(run_cli("predict", "--model", str(tmp_path / "junk.pt"), str(EXAMPLES[0])), 2, "not a TorchScript")
    proc = run_cli("export", "--no-check", "--out", str(tmp_path / "unchecked.pt"), "--format", "torchscript",
                   "--data-dir", str(tmp_path / "nowhere"), "--no-download")
    assert proc.returncode == 0 and "not checked" in proc.stderr


def test_onnx_predict_needs_no_torch(tmp_path, data_dir):
    """What makes `predict --model m.onnx` one quick process: onnxruntime, numpy and Pillow only."""
    import subprocess
    import sys

    from digitkit import api

    model = api.export("mnist", out=tmp_path / "m.onnx", data_dir=data_dir, limit=10).path
    code = ("import sys\nfrom digitkit import api\n"
            f"got = [p.label for p in api.predict({[str(p) for p in EXAMPLES]!r}, model={model!r})]\n"
            "assert got == [str(d) for d in range(10)], got\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_onnx_reader_matches_torch_with_test_time_views(tiny, tmp_path, data_dir):
    """A checkpoint that averages flipped and shifted views: the numpy path gives PyTorch's probabilities."""
    import numpy as np

    from digitkit import api, checkpoint
    from digitkit.reader import Reader

    ckpt = checkpoint.load(tiny["resnet"])
    ckpt.input["tta"] = ["flip", "shift"]
    checkpoint.save(tmp_path / "tta.safetensors", ckpt)
    exported = api.export(tmp_path / "tta.safetensors", out=tmp_path / "tta.onnx", data_dir=data_dir, limit=50).path
    images = list(np.random.default_rng(0).integers(0, 256, (6, 3, 32, 32), dtype=np.uint8))
    by_torch = Reader(checkpoint.load(tmp_path / "tta.safetensors")).probabilities(images)
    by_onnx = Reader(checkpoint.load(exported)).probabilities(images)
    assert np.abs(by_torch - by_onnx).max() < 1e-4
