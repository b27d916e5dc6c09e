"""Config files: --config, --print-config and --config-from, and how they stack with presets and flags."""

from __future__ import annotations

import tomllib

from conftest import assert_one_line_error, run_cli


def printed(*args: str) -> dict:
    proc = run_cli("train", *args, "--print-config")
    assert proc.returncode == 0, proc.stderr
    return tomllib.loads(proc.stdout)


def test_print_config_shows_the_effective_config():
    cfg = printed("mnist", "-e", "3", "-o", "dense=64", "--preset", "fast")
    assert cfg["dataset"] == "mnist" and cfg["model"] == "cnn" and cfg["epochs"] == 3
    assert cfg["schedule"] == "onecycle"  # from the preset
    assert cfg["model_options"] == {"filters": [16, 32, 64], "dense": 64}  # preset size, flag on top


def test_flags_override_the_file_which_overrides_the_preset(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('dataset = "fashion-mnist"\npreset = "fast"\nepochs = 4\nlr = 0.01\n\n[model_options]\nfilters = [8, 16]\n')
    cfg = printed("--config", str(path), "--lr", "0.02", "-o", "dense=32")
    assert cfg["dataset"] == "fashion-mnist" and cfg["epochs"] == 4 and cfg["lr"] == 0.02
    assert cfg["schedule"] == "onecycle"
    assert cfg["model_options"] == {"filters": [8, 16], "dense": 32}
    assert printed("mnist", "--config", str(path))["dataset"] == "mnist"  # the argument beats the file


def test_printed_config_reads_back_to_itself(tmp_path):
    first = run_cli("train", "fsdd", "--epochs", "7", "--print-config")
    path = tmp_path / "again.toml"
    path.write_text(first.stdout)
    second = run_cli("train", "--config", str(path), "--print-config")
    assert second.returncode == 0, second.stderr
    assert tomllib.loads(second.stdout) == tomllib.loads(first.stdout)


def test_config_from_checkpoint_repeats_its_run(small_mnist):
    cfg = printed("--config-from", str(small_mnist.checkpoint))
    assert cfg["dataset"] == "mnist" and cfg["limit"] == 12000 and cfg["epochs"] == 3 and cfg["seed"] == 1
    assert printed("--config-from", str(small_mnist.checkpoint), "--epochs", "5")["epochs"] == 5


def test_config_from_a_checkpoint_older_than_an_option_repeats_what_it_did(tmp_path):
    """A checkpoint written before --feature-norm existed (no feature_norm in its config or input) was trained with
    cmvn: repeating its run keeps cmvn, while its own run today and a checkpoint that records the option say cmn."""
    import dataclasses

    from digitkit import checkpoint
    from digitkit.weights import shipped

    fsdd = checkpoint.load(shipped("speech", "fsdd"))
    older = dataclasses.replace(
        fsdd, train_config={k: v for k, v in fsdd.train_config.items() if k != "feature_norm"},
        input={k: v for k, v in fsdd.input.items() if k != "feature_norm"})
    checkpoint.save(tmp_path / "older.safetensors", older)
    assert printed("--config-from", str(tmp_path / "older.safetensors"))["feature_norm"] == "cmvn"
    assert printed("--config-from", str(shipped("speech", "fsdd")))["feature_norm"] == "cmn"
    assert printed("fsdd")["feature_norm"] == "cmn"


def test_bad_config_files_are_one_line_errors(tmp_path):
    cases = {
        "unknown.toml": ('epochz = 3\n', "unknown key(s) epochz"),
        "broken.toml": ('epochs = \n', "not valid TOML"),
        "typed.toml": ('epochs = "three"\n', "epochs must be int"),
        "optional.toml": ('limit = "abc"\n', "limit must be int"),
        "options.toml": ('model_options = 3\n', "model_options must be a table"),
    }
    for name, (text, needle) in cases.items():
        (tmp_path / name).write_text(text)
        assert_one_line_error(run_cli("train", "mnist", "--config", str(tmp_path / name), "--print-config"), 2, needle)
    assert_one_line_error(run_cli("train", "--config", str(tmp_path / "missing.toml")), 2, "does not exist")
    assert_one_line_error(run_cli("train", "mnist", "--config", str(tmp_path / "typed.toml"), "--config-from", "x"), 2, "not both")
    (tmp_path / "nodata.toml").write_text("epochs = 2\n")
    assert_one_line_error(run_cli("train", "--config", str(tmp_path / "nodata.toml")), 2, "give a DATASET")
