"""Each train option is declared once, in `digitkit.config.TrainConfig`: the `train` command, config files and the
option table in docs/usage.md must all agree with that declaration."""

from __future__ import annotations

import dataclasses
import re

import typer.main

from conftest import REPO
from digitkit import config
from digitkit.cli import app
from digitkit.configfile import check_options, read_config, to_toml


def _train_command():
    return typer.main.get_command(app).commands["train"]


def _docs_rows() -> dict[str, str]:
    """First long flag -> default cell, for every row of the train option table in docs/usage.md."""
    text = (REPO / "docs" / "usage.md").read_text()
    table = text[text.index("| option | default | what it does |"):].split("\n\n")[0]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[re.match(r"`(--[a-z-]+)", cells[0]).group(1)] = cells[1]
    return rows


def test_every_config_option_is_a_cli_option_with_its_declared_help():
    params = {p.opts[0]: p for p in _train_command().params if p.opts and p.opts[0].startswith("--")}
    for f in config.cli_options():
        param = params[config.flag(f.name)]
        assert f.metadata["help"] in param.help and config.default_text(f.name) in param.help, f.name


def test_docs_table_lists_every_train_option_with_the_declared_default():
    rows = _docs_rows()
    cli_flags = {p.opts[0] for p in _train_command().params if p.opts and p.opts[0].startswith("--")}
    assert set(rows) == cli_flags
    for f in config.cli_options():
        assert rows[config.flag(f.name)] == config.default_text(f.name), f.name


def test_config_files_take_exactly_the_declared_options(tmp_path):
    cli_names = {f.name for f in config.cli_options()}
    file_keys = {f.name for f in dataclasses.fields(config.TrainConfig)} - {"dataset", "model_options"}
    assert cli_names == file_keys  # every config-file key is a flag, and every flag a config-file key
    cfg = config.resolve("mnist", {"epochs": 4, "words": None, "grad_clip": 1.5, "max_words": 5, "compile": True})
    path = tmp_path / "run.toml"
    path.write_text(to_toml(cfg))
    assert read_config(path) == check_options({k: v for k, v in cfg.to_dict().items() if v is not None}, "x")
