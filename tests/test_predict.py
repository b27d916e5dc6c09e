"""Predict: drawn digits, MNIST-style preprocessing, batching, stdin and JSON, and every bad-input path."""

import json

import numpy as np
import pytest
from PIL import Image

from conftest import FONT, draw_digit, require, run_cli
from digitkit import api
from digitkit.data.preprocess import mnist_style, open_image
from digitkit.data.registry import get_dataset, load
from digitkit.errors import InputError


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    folder = tmp_path_factory.mktemp("drawn")
    return [draw_digit(folder / f"{d}.png", str(d)) for d in range(10)]


def test_shipped_model_reads_drawn_digits(drawn):
    """No --model: the pretrained MNIST model inside the package, on digits typeset in DejaVu Sans."""
    results = list(api.predict(drawn))
    right = sum(r.label == p.stem for r, p in zip(results, drawn))
    assert right >= 9, [(p.stem, r.label, round(r.confidence, 3)) for r, p in zip(results, drawn)]


def test_real_mnist_digits_survive_the_photo_pipeline(tmp_path, data_dir, small_mnist):
    """MNIST test digits written as upscaled black-on-white PNGs must still be recognised after preprocessing."""
    splits = load(get_dataset("mnist"), data_dir, allow_download=False)
    paths = []
    for i in range(100):
        ink = 255 - splits.test_x[i, 0].numpy()
        img = Image.fromarray(ink).resize((112, 112), Image.Resampling.BICUBIC)
        paths.append(tmp_path / f"{i}_{int(splits.test_y[i])}.png")
        img.save(paths[-1])
    results = list(api.predict(paths, model=small_mnist.checkpoint))
    right = sum(r.label == p.stem.split("_")[1] for r, p in zip(results, paths))
    assert right >= 93


def test_preprocessing_is_mnist_like(tmp_path):
    dark = draw_digit(tmp_path / "dark.png", "7", ink=0, paper=255)
    light = draw_digit(tmp_path / "light.png", "7", ink=255, paper=0)
    shifted = draw_digit(tmp_path / "shift.png", "7", size=(300, 200), offset=(90, -40))
    a, b, c = (mnist_style(open_image(p))[0].astype(float) for p in (dark, light, shifted))
    assert a.shape == (28, 28)
    assert np.abs(a - b).mean() < 2 and np.abs(a - c).mean() < 12  # polarity and placement no longer matter
    rows, cols = np.nonzero(a > 64)
    assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 <= 21  # fitted into a 20x20 box
    mass = a.sum()
    cy, cx = (a.sum(1) * np.arange(28)).sum() / mass, (a.sum(0) * np.arange(28)).sum() / mass
    assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1  # centred by centre of mass


def test_transparent_png_and_jpeg(tmp_path):
    from PIL import ImageDraw, ImageFont

    require(FONT.is_file(), f"the DejaVu Sans font ({FONT})", "fonts-dejavu-core")
    font = ImageFont.truetype(str(FONT), 48)
    rgba = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).text((32, 32), "4", fill=(0, 0, 0, 255), font=font, anchor="mm")
    rgba.save(tmp_path / "ink.png")
    rgb = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(rgb).text((32, 32), "4", fill="black", font=font, anchor="mm")
    rgb.save(tmp_path / "ink.jpg", quality=90)
    a = mnist_style(open_image(tmp_path / "ink.png"))[0].astype(float)
    b = mnist_style(open_image(tmp_path / "ink.jpg"))[0].astype(float)
    assert a.max() == 255 and np.abs(a - b).mean() < 6


def test_batching_does_not_change_answers(drawn, small_mnist):
    one = list(api.predict(drawn, model=small_mnist.checkpoint, batch_size=1, top_k=3))
    many = list(api.predict(drawn, model=small_mnist.checkpoint, batch_size=256, top_k=3))
    assert [r.label for r in one] == [r.label for r in many]
    for a, b in zip(one, many):
        assert [l for l, _ in a.top] == [l for l, _ in b.top]
        assert abs(a.confidence - b.confidence) < 1e-4


@pytest.fixture
def bad_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    whole = draw_digit(tmp_path / "whole.png", "5").read_bytes()
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])
    Image.new("L", (40, 40), 255).save(tmp_path / "blank.png")
    (tmp_path / "folder.png").mkdir()
    return {
        "empty.png": "empty file", "text.png": "not an image", "cut.png": "truncated or corrupt",
        "folder.png": "is a directory", "missing.png": "no such file",
    }


def test_bad_inputs_one_line_each_others_still_predicted(tmp_path, bad_files, small_mnist):
    good = draw_digit(tmp_path / "good.png", "3")
    names = ["empty.png", "text.png", str(good), "cut.png", "blank.png", "folder.png", "missing.png"]
    proc = run_cli("predict", "--model", str(small_mnist.checkpoint), *names, cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    out = proc.stdout.splitlines()
    assert [line.split("\t")[0] for line in out] == [str(good), "blank.png"]
    assert out[1].split("\t")[1] == "?"  # blank paper is read, as nothing: not an error
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == len(bad_files)
    assert "digitkit: warning: blank.png: blank: no writing found" in proc.stderr
    for name, reason in bad_files.items():
        assert any(line.startswith(f"digitkit: error: {name}: {reason}") for line in errors), (name, errors)


def test_open_image_errors_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        open_image(tmp_path / "nope.png")


def test_stdin_tsv_json_and_top_k(drawn, small_mnist):
    listing = "\n".join(str(p) for p in drawn[:4]) + "\n\n"
    proc = run_cli("predict", "-", "--model", str(small_mnist.checkpoint), stdin=listing)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert [r[0] for r in rows] == [str(p) for p in drawn[:4]]
    assert all(len(r) == 3 and 0 <= float(r[2]) <= 1 for r in rows)
    proc = run_cli("predict", "-", "--json", "-k", "3", "--model", str(small_mnist.checkpoint), stdin=listing)
    objs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(objs) == 4 and set(objs[0]) >= {"path", "label", "confidence", "top", "characters"}
    assert len(objs[0]["characters"]) == 1 and len(objs[0]["characters"][0]["box"]) == 4
    assert len(objs[0]["top"]) == 3 and objs[0]["top"][0]["label"] == objs[0]["label"]
    assert objs[0]["top"][0]["confidence"] >= objs[0]["top"][1]["confidence"] >= objs[0]["top"][2]["confidence"]
    tsv = run_cli("predict", str(drawn[0]), "-k", "2", "--min-confidence", "0", "--model",
                  str(small_mnist.checkpoint)).stdout.split("\t")
    assert len(tsv) == 5


def test_a_picture_piped_to_stdin_is_read_as_that_picture(drawn):
    """`-` reads paths, one per line; a picture's own bytes on stdin are read as that one picture, named `-`. The
    API takes the same bytes, named or not."""
    from digitkit.reader import Encoded

    png = drawn[7].read_bytes()
    proc = run_cli("predict", "-", "--json", stdin=png)
    assert proc.returncode == 0, proc.stderr
    piped = json.loads(proc.stdout)
    assert piped["path"] == "-" and piped["label"] == "7"
    as_file, as_bytes, named = api.predict([drawn[7], png, Encoded(png, "seven.png")])
    assert as_bytes.path == "<bytes 1>" and named.path == "seven.png"
    assert as_file.label == as_bytes.label == named.label == "7" and as_bytes.confidence == as_file.confidence
    proc = run_cli("predict", "-", stdin=b"\x89PNG\r\n\x1a\n" + b"\0" * 64)  # a damaged picture: its one line, exit 1
    assert proc.returncode == 1 and "digitkit: error: -: " in proc.stderr.decode() and "Traceback" not in proc.stderr.decode()


def test_audio_piped_to_transcribe_points_to_stream():
    """Audio bytes on `transcribe -` are no list of paths: one line naming --stream, which reads a WAV stream."""
    import io

    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(8000, dtype=np.float32), 8000, format="WAV")
    proc = run_cli("transcribe", "-", stdin=buffer.getvalue())
    assert proc.returncode == 2 and "--stream" in proc.stderr.decode(), proc.stderr.decode()
    assert "Traceback" not in proc.stderr.decode()


def test_cifar_style_input_for_rgb_models(tmp_path, data_dir):
    result = api.train("cifar10", model="cnn", out=tmp_path / "c.safetensors", data_dir=data_dir, limit=200, epochs=1,
                       model_options={"filters": [8, 16], "dense": 16})
    Image.new("RGB", (640, 480), (200, 30, 30)).save(tmp_path / "photo.jpg")
    (prediction,) = api.predict([tmp_path / "photo.jpg"], model=result.checkpoint, top_k=10)
    assert prediction.label in get_dataset("cifar10").classes and len(prediction.top) == 10
