"""A seeded hostile-input corpus, bounded to seconds: mutated images, audio files, checkpoints, configs and resume
states. Each ends in one line and a meaningful exit code (never a traceback), good inputs in the same batch still
print, and one process reading the whole fuzzed batch stays within 1 GB of memory beyond what the good inputs
alone take."""

from __future__ import annotations

import io
import json
import random
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import DATA, REPO

EXAMPLES = sorted((REPO / "docs" / "examples").glob("digit-*.png"))
CLIP = DATA / "fsdd" / "recordings" / "3_theo_2.wav"
GB = 1 << 30


def mutations(data: bytes, count: int, seed: int) -> list[bytes]:
    """Byte flips, runs of random bytes, truncations, duplications and splices: the usual mutational fuzz."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        b = bytearray(data)
        kind = rng.randrange(6)
        if kind == 0:  # a few flipped bytes, anywhere (headers included)
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        elif kind == 1:  # the header scrambled
            for i in range(min(len(b), rng.randint(4, 64))):
                if rng.random() < 0.3:
                    b[i] = rng.randrange(256)
        elif kind == 2:  # truncated
            b = b[: rng.randrange(len(b))]
        elif kind == 3:  # a run of random bytes
            at = rng.randrange(len(b))
            b[at : at + rng.randint(1, 256)] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 256)))
        elif kind == 4:  # a chunk repeated
            at = rng.randrange(len(b))
            b = b[:at] + b[at : at + rng.randint(1, 512)] * rng.randint(2, 50) + b[at:]
        else:  # 32-bit fields set to extremes (lengths, rates, sizes)
            for _ in range(rng.randint(1, 4)):
                at = rng.randrange(max(1, len(b) - 4))
                b[at : at + 4] = struct.pack("<I", rng.choice([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 44101, 1 << 24]))
        out.append(bytes(b))
    return out


def run_measured(args: list[str], stdin: str | None = None) -> tuple[subprocess.CompletedProcess, int]:
    """The real `digitkit` in a child that reports its own peak memory (bytes) on its last stderr line."""
    code = ("import resource, runpy, sys\n"
            "sys.argv = ['digitkit'] + sys.argv[1:]\n"
            "try:\n    runpy.run_module('digitkit', run_name='__main__')\n"
            "except SystemExit as exc:\n    code = exc.code\nelse:\n    code = 0\n"
            "sys.stdout.flush()\n"
            "sys.stderr.write(f'PEAK {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}\\n')\n"
            "sys.exit(code)\n")
    proc = subprocess.run([sys.executable, "-c", code, *args], input=stdin, capture_output=True, text=True, timeout=600,
                          env={"DIGITKIT_DATA": str(DATA), "PATH": "/usr/bin:/bin"})
    lines = proc.stderr.splitlines()
    peak = int(lines[-1].split()[1])
    proc.stderr = "\n".join(lines[:-1])
    return proc, peak


def assert_clean_batch(proc: subprocess.CompletedProcess, inputs: list[str], good: dict[str, str]) -> None:
    """Every input has one line, on stdout or as `digitkit: error:` on stderr; the good ones print their answers."""
    assert proc.returncode in (0, 1), (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    for line in proc.stderr.splitlines():
        assert line.startswith(("digitkit: error:", "digitkit: warning:")), line
    printed = {line.split("\t")[0]: line.split("\t")[1] for line in proc.stdout.splitlines()}
    errors = [line for line in proc.stderr.splitlines() if line.startswith("digitkit: error:")]
    assert len(printed) + len(errors) == len(set(inputs)), (len(printed), len(errors), len(inputs))
    for path, answer in good.items():
        assert printed.get(path) == answer, (path, printed.get(path))


def test_fuzzed_images_in_one_batch(tmp_path):
    seeds = [p.read_bytes() for p in EXAMPLES[:4]]
    from PIL import Image

    buffer = io.BytesIO()
    Image.open(EXAMPLES[5]).save(buffer, format="JPEG")
    seeds.append(buffer.getvalue())
    fuzzed = []
    for i, seed in enumerate(seeds):
        for j, data in enumerate(mutations(seed, 40, seed=i)):
            path = tmp_path / f"fuzz-{i}-{j}.{'jpg' if i == 4 else 'png'}"
            path.write_bytes(data)
            fuzzed.append(str(path))
    good = {str(EXAMPLES[7]): "7", str(EXAMPLES[2]): "2"}
    inputs = [str(EXAMPLES[7])] + fuzzed + [str(EXAMPLES[2])]
    _, baseline = run_measured(["predict", *good])
    proc, peak = run_measured(["predict", "-"], stdin="\n".join(inputs) + "\n")
    assert_clean_batch(proc, inputs, good)
    assert peak < baseline + GB, (peak, baseline)


def test_fuzzed_audio_in_one_batch(tmp_path):
    clip = CLIP.read_bytes()
    buffer = io.BytesIO()
    sf.write(buffer, sf.read(CLIP, dtype="float32")[0], 8000, format="FLAC")
    fuzzed = []
    for i, (seed, suffix) in enumerate(((clip, "wav"), (buffer.getvalue(), "flac"))):
        for j, data in enumerate(mutations(seed, 60, seed=100 + i)):
            path = tmp_path / f"fuzz-{i}-{j}.{suffix}"
            path.write_bytes(data)
            fuzzed.append(str(path))
    good = {str(CLIP): "3"}
    inputs = [str(CLIP)] + fuzzed
    _, baseline = run_measured(["transcribe", str(CLIP)])
    proc, peak = run_measured(["transcribe", "-"], stdin="\n".join(inputs) + "\n")
    assert_clean_batch(proc, inputs, good)
    assert peak < baseline + GB, (peak, baseline)


def _weird(rng: random.Random) -> object:
    return rng.choice([None, True, -1, 0, 1, 2**63, -(2**63), 1e308, float("nan"), "x", "", [], [1, 2], {}, {"a": 1},
                       [[[[]]]], "9" * 400, 3.5, -0.5, 100000])


def test_fuzzed_checkpoint_metadata_is_refused_or_works(tmp_path):
    """Every metadata field of the shipped models set to odd values, one at a time, in-process: loading, building
    and reading a picture or a clip either works or raises a digitkit error, never anything else."""
    from safetensors.torch import load_file, save_file

    from digitkit import api
    from digitkit.errors import DigitkitError

    rng = random.Random(7)
    for name in ("mnist-cnn", "fsdd-lstm"):
        source = REPO / "digitkit" / "weights" / f"{name}.safetensors"
        from safetensors import safe_open

        with safe_open(str(source), framework="pt") as f:
            meta = f.metadata()
        tensors = load_file(str(source))
        for trial in range(40):
            key = rng.choice(sorted(meta))
            changed = dict(meta)
            if meta[key].startswith(("{", "[")):
                value = json.loads(meta[key])
                if isinstance(value, dict) and value:
                    value[rng.choice(sorted(value))] = _weird(rng)
                elif isinstance(value, list) and value:
                    value[rng.randrange(len(value))] = _weird(rng)
                changed[key] = json.dumps(value)
            else:
                changed[key] = json.dumps(_weird(rng)) if rng.random() < 0.5 else str(_weird(rng))
            path = tmp_path / f"{name}-{trial}.safetensors"
            save_file(tensors, str(path), metadata=changed)
            try:
                if name == "mnist-cnn":
                    results = list(api.predict([str(EXAMPLES[3])], model=path))
                else:
                    results = list(api.transcribe([str(CLIP)], model=path))
                assert len(results) == 1
            except DigitkitError:
                pass


def test_fuzzed_configs_are_refused_or_accepted(tmp_path):
    """Train options of every kind of wrong value, through a TOML file: resolved or refused with a digitkit error."""
    import tomli_w

    from digitkit.api import resolve_config
    from digitkit.config import TrainConfig
    from digitkit.configfile import read_config
    from digitkit.errors import DigitkitError

    rng = random.Random(11)
    fields = [f for f in TrainConfig.__dataclass_fields__ if f != "dataset"]
    for trial in range(150):
        options = {rng.choice(fields): _weird(rng) for _ in range(rng.randint(1, 3))}
        options = {k: v for k, v in options.items() if v is not None}
        path = tmp_path / f"c{trial}.toml"
        try:
            path.write_bytes(tomli_w.dumps({"dataset": "mnist", **options}).encode())
        except (TypeError, ValueError):  # a value TOML cannot hold (NaN is fine, None is not)
            continue
        try:
            cfg = read_config(path)
            cfg.pop("dataset", None)
            resolve_config("mnist", **cfg)
        except DigitkitError:
            pass
    for raw in (b"\x00\x01\x02", b"epochs = [" * 50000, b"[model_options]\nfilters = 'x'\n", "lr = 1e999".encode()):
        path = tmp_path / "raw.toml"
        path.write_bytes(raw)
        with pytest.raises(DigitkitError):
            cfg = read_config(path)
            cfg.pop("dataset", None)
            resolve_config("mnist", **cfg)


@pytest.fixture(scope="module")
def resumable(tmp_path_factory, data_dir):
    from digitkit import api

    out = tmp_path_factory.mktemp("resume") / "run.safetensors"
    api.train("mnist", out=out, data_dir=data_dir, limit=200, epochs=1, test=False, schedule="plateau")
    return out


def test_tampered_resume_states_are_one_line(resumable, tmp_path, data_dir):
    """The training state a resume trusts (epoch, scheduler, early stopping, optimizer groups and tensors), each
    part set to odd values: the resume continues or stops with a digitkit error."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from digitkit import api
    from digitkit.errors import DigitkitError

    with safe_open(str(resumable), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(resumable))
    state = json.loads(meta["train_state"])
    rng = random.Random(3)
    paths = [("epoch",), ("status",), ("scheduler",), ("early_stopping",), ("early_stopping", "best"),
             ("early_stopping", "bad_epochs"), ("optimizer",), ("optimizer", "param_groups"), ("data",)]
    if isinstance(state.get("scheduler"), dict) and state["scheduler"]:
        paths += [("scheduler", k) for k in state["scheduler"]]
    outcomes = {"resumed": 0, "refused": 0}
    for trial in range(len(paths)):
        changed = json.loads(meta["train_state"])
        where = paths[trial % len(paths)]
        node = changed
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = _weird(rng)
        bad_tensors = dict(tensors)
        if trial % 4 == 3:  # an optimizer tensor of the wrong shape
            key = next(k for k in tensors if k.startswith("train.optim."))
            import torch

            bad_tensors[key] = torch.zeros(3)
        path = tmp_path / f"t{trial}.safetensors"
        save_file(bad_tensors, str(path), metadata={**meta, "train_state": json.dumps(changed)})
        try:
            api.train(resume=path, data_dir=data_dir, epochs=2, test=False)
            outcomes["resumed"] += 1
        except DigitkitError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0, outcomes
