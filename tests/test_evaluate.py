"""Evaluate: the shipped model on the real MNIST test set, tables, JSON and PNG plots."""

import json

from PIL import Image

from conftest import run_cli
from digitkit import api, checkpoint as ckpt_io
from digitkit.weights import shipped


def test_shipped_model_is_what_the_readme_says(data_dir):
    result = api.evaluate(data_dir=data_dir)
    meta = ckpt_io.load(shipped("image"))
    assert result.samples == 10000 and result.accuracy >= 0.993
    assert abs(result.accuracy - meta.metrics["test_accuracy"]) < 1e-6  # the figure in its metadata is true
    assert meta.train_state is None  # shipped for deployment only, so the wheel stays small
    assert sum(map(sum, result.confusion)) == 10000 and len(result.per_class) == 10


def test_cli_json_and_plots(tmp_path, small_mnist):
    plot, curves = tmp_path / "confusion.png", tmp_path / "curves.png"
    proc = run_cli("evaluate", str(small_mnist.checkpoint), "--json", "--plot", str(plot), "--curves", str(curves))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert {"accuracy", "loss", "per_class", "confusion", "classes", "samples", "checkpoint"} <= data.keys()
    assert abs(data["accuracy"] - small_mnist.metrics["test_accuracy"]) < 1e-6
    assert {"class", "precision", "recall", "f1", "support"} == set(data["per_class"][0])
    for png in (plot, curves):
        with Image.open(png) as img:
            assert img.format == "PNG" and img.width > 300


def test_cli_tables(small_mnist):
    proc = run_cli("evaluate", str(small_mnist.checkpoint))
    assert proc.returncode == 0
    assert "accuracy" in proc.stdout and "confusion matrix" in proc.stdout and "precision" in proc.stdout


def test_another_kinds_dataset_names_only_the_datasets_the_model_fits():
    """The MNIST model cannot be scored on Fashion-MNIST (other classes) or CIFAR-10 (colour, 32 px): the error
    offers only what it can be evaluated on."""
    from conftest import assert_one_line_error

    proc = run_cli("evaluate", str(shipped("image")), "--dataset", "fsdd")
    assert_one_line_error(proc, 2, "it can be evaluated on mnist")
    assert "cifar10" not in proc.stderr and "fashion" not in proc.stderr
