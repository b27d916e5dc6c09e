"""`digitkit info`, `models`, `datasets`: what is on this machine, with --json, and without importing torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from conftest import DATA, REPO, assert_one_line_error, run_cli
from digitkit.weights import shipped_files

SHIPPED = REPO / "digitkit" / "weights"


def test_info_describes_a_checkpoint_and_its_exports(tmp_path):
    proc = run_cli("info", "--json", str(SHIPPED / "mnist-cnn.safetensors"))
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["model"] == "cnn" and found["dataset"] == "mnist" and found["kind"] == "image"
    assert found["classes"] == [str(d) for d in range(10)] and found["metrics"]["test_accuracy"] > 0.99
    assert found["parameters"] > 100_000 and found["train_config"]["dataset"] == "mnist" and "torch" in found["versions"]
    for fmt, suffix in (("onnx", "onnx"), ("torchscript", "pt")):
        out = tmp_path / f"fsdd.{suffix}"
        assert run_cli("export", "fsdd", "-f", fmt, "--limit", "20", "--out", str(out)).returncode == 0
        exported = json.loads(run_cli("info", "--json", str(out)).stdout)
        assert exported["file_format"] == fmt and exported["model"] == "lstm" and exported["kind"] == "speech"
        assert exported["input"]["sample_rate"] == 8000 and exported["metrics"]["test_accuracy"] > 0.9
    text = run_cli("info", str(SHIPPED / "digits-lstm.safetensors")).stdout
    assert "parameters" in text and "digits (speech)" in text and "WER" in text
    for name in ("digits", "mnist"):  # by the name `digitkit models` lists
        named = run_cli("info", "--json", name)
        assert named.returncode == 0, named.stderr
        found = json.loads(named.stdout)
        assert found["dataset"] == name and found["path"] == str(shipped_files()[name])


def test_info_refuses_what_is_not_a_model(tmp_path):
    (tmp_path / "short.safetensors").write_bytes(b"abc")
    assert_one_line_error(run_cli("info", str(tmp_path / "short.safetensors")), 2, "shorter than its header")
    (tmp_path / "huge.safetensors").write_bytes((1 << 62).to_bytes(8, "little") + b"{}")
    assert_one_line_error(run_cli("info", str(tmp_path / "huge.safetensors")), 2, "header length")
    assert_one_line_error(run_cli("info", str(tmp_path / "none.safetensors")), 2, "no such checkpoint")
    assert_one_line_error(run_cli("info", str(tmp_path)), 2, "is a directory")
    (tmp_path / "m.onnx").write_bytes(b"\x00garbage")
    assert_one_line_error(run_cli("info", str(tmp_path / "m.onnx")), 2, "ONNX")


def test_models_lists_shipped_models_and_runs(tmp_path):
    runs = tmp_path / "runs"
    (runs / "tune-mnist").mkdir(parents=True)
    shutil.copy(SHIPPED / "fsdd-lstm.safetensors", runs / "tune-mnist" / "trial-3.safetensors")
    (runs / "broken.safetensors").write_bytes(b"12345678")
    proc = run_cli("models", "--json", "--runs", str(runs))
    assert proc.returncode == 0, proc.stderr
    entries = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["name"] for e in entries if e["shipped"]] == ["mnist", "fsdd", "digits"]
    mine = {e["path"]: e for e in entries if not e["shipped"]}
    trial = mine[str(runs / "tune-mnist" / "trial-3.safetensors")]
    assert trial["dataset"] == "fsdd" and trial["metrics"]["test_accuracy"] > 0.9
    assert mine[str(runs / "broken.safetensors")]["problem"]
    table = run_cli("models", "--runs", str(tmp_path / "nothing"))
    assert "digits" in table.stdout and "accuracy" in table.stdout and "no checkpoints" in table.stderr


def test_datasets_says_what_is_present_and_how_to_get_the_rest(tmp_path):
    present = {e["name"]: e for e in map(json.loads, run_cli("datasets", "--json", "--data-dir", str(DATA)).stdout.splitlines())}
    assert present["mnist"]["present"] == "yes" and present["mnist"]["files"] == 4 and present["mnist"]["size_bytes"] > 10e6
    assert present["fsdd"]["files"] == 3000 and "an4-digits" in present["digits"]["note"]
    assert set(present) == {"mnist", "fashion-mnist", "cifar10", "fsdd", "speechcommands", "digits"}
    empty = {e["name"]: e for e in map(json.loads, run_cli("datasets", "--json", "--data-dir", str(tmp_path)).stdout.splitlines())}
    assert empty["mnist"]["present"] == "no" and empty["mnist"]["where"] == str(tmp_path / "MNIST" / "raw")
    assert any("train-images-idx3-ubyte.gz" in step and "https://" in step for step in empty["mnist"]["get"])
    assert any("github.com/Jakobovski/free-spoken-digit-dataset" in step for step in empty["fsdd"]["get"])
    if empty["fashion-mnist"]["present"] == "no":  # Debian's package, where it is not installed
        assert any("apt-get install dataset-fashion-mnist" in step for step in empty["fashion-mnist"]["get"])
    text = run_cli("datasets", "--data-dir", str(tmp_path)).stdout
    assert "PRESENT" in text and "mnist: " in text


def test_catalog_commands_do_not_import_torch():
    """What keeps them well under half a second: torch's import alone takes longer."""
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom digitkit.cli import app\n"
        f"for args in (['info', {str(SHIPPED / 'mnist-cnn.safetensors')!r}], ['models'], ['datasets', '--data-dir', {str(DATA)!r}]):\n"
        "    r = CliRunner().invoke(app, args)\n    assert r.exit_code == 0, r.output\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
