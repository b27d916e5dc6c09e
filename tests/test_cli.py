"""The command line as a user meets it: help, version, fast start-up, one-line errors with exit codes."""

import subprocess
import sys

from conftest import assert_one_line_error, run_cli


def test_help_lists_commands():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for command in ("train", "evaluate", "predict"):
        assert command in proc.stdout


def test_version():
    from digitkit import __version__

    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"digitkit {__version__}"


def test_cli_module_does_not_import_torch():
    """`digitkit --help` stays instant because nothing heavy is imported at the top of the CLI."""
    code = "import sys, digitkit, digitkit.cli; print(sorted(m for m in ('torch', 'torchvision', 'torchaudio', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_train_without_dataset_is_usage_error():
    assert_one_line_error(run_cli("train"), 2, "give a DATASET")


def test_unknown_dataset():
    assert_one_line_error(run_cli("train", "imagenet"), 2, "unknown dataset 'imagenet'")


def test_bad_option_values():
    assert_one_line_error(run_cli("train", "mnist", "--epochs", "0", "--val-split", "1.5"), 2, "--epochs must be at least 1")
    assert_one_line_error(run_cli("train", "mnist", "--model", "vgg"), 2, "unknown model 'vgg'")
    assert_one_line_error(run_cli("train", "mnist", "--preset", "huge"), 2, "unknown preset 'huge'")
    assert_one_line_error(run_cli("train", "mnist", "-o", "filters"), 2, "KEY=VALUE")
    assert_one_line_error(run_cli("train", "mnist", "-o", "colour=red"), 2, "has no option(s) colour")


def test_missing_checkpoint():
    assert_one_line_error(run_cli("evaluate", "nope.safetensors"), 2, "no such checkpoint file")
    assert_one_line_error(run_cli("predict", "--model", "nope.safetensors", "x.png"), 2, "no such checkpoint file")


def test_unwritable_output_and_bad_model_sizes(tmp_path):
    (tmp_path / "taken").mkdir()
    assert_one_line_error(run_cli("train", "mnist", "--limit", "100", "--epochs", "1", "--out", str(tmp_path / "taken")),
                          2, "cannot write checkpoint")
    assert_one_line_error(run_cli("train", "mnist", "--limit", "100", "-o", "filters=abc"), 2, "bad model options")


def test_bad_model_options_fail_before_any_data_is_read(tmp_path):
    # an empty data dir: were the data loaded first, this would be the missing-files error instead
    empty = str(tmp_path)
    assert_one_line_error(run_cli("train", "cifar10", "--model", "resnet", "--data-dir", empty, "-o", "widths=64,128"),
                          2, "one blocks entry per stage")
    assert_one_line_error(run_cli("train", "fsdd", "--data-dir", empty, "-o", "layers=0"), 2, "bad model options")


def test_shell_completion_and_help_text():
    import os
    import subprocess
    import sys

    # the shell is detected from the parent process; under pytest there is none, so it is named (typer's own switch)
    shown = run_cli("--show-completion", "bash", env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert "_digitkit_completion" in shown.stdout, shown.stderr
    env = {**os.environ, "_DIGITKIT_COMPLETE": "complete_bash", "COMP_WORDS": "digitkit ex", "COMP_CWORD": "1"}
    done = subprocess.run([sys.executable, "-m", "digitkit"], env=env, capture_output=True, text=True)
    assert done.stdout.split() == ["export"], done
    train = run_cli("train", "--help", env={"COLUMNS": "200"}).stdout
    assert "[model_options] table" in train and "--model-option KEY=VALUE" in train
    usage = {c: run_cli(c, "--help").stdout.splitlines()[0] for c in ("predict", "transcribe", "evaluate", "export", "info")}
    assert usage["predict"].endswith("{FILE}...") and usage["transcribe"].endswith("[FILE]...")
    assert usage["evaluate"].endswith("[CHECKPOINT]") and usage["info"].endswith("{CHECKPOINT}")
