"""Shared fixtures: the real datasets from $DIGITKIT_DATA, one small real-MNIST model per session, CLI runners."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("DIGITKIT_DATA") or REPO.parent / "shared" / "datasets")
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
FASHION_DEBIAN = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def require(present: bool, what: str, package: str) -> None:
    """Fail (not skip) a test whose system package is missing, naming the command that installs it: the README's
    test command, scripts/test, installs all of them."""
    if not present:
        pytest.fail(f"{what} is missing: run scripts/test (it installs it), or: sudo apt-get install {package}")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "MNIST" / "raw").is_dir():
        pytest.fail(f"real datasets not found at {DATA}; set DIGITKIT_DATA (the README's test command does)")
    return DATA


@pytest.fixture(scope="session")
def small_mnist(tmp_path_factory, data_dir):
    """A CNN trained for a short run on a real MNIST subset; also the suite's accuracy check."""
    from digitkit import api

    out = tmp_path_factory.mktemp("small") / "mnist-small.safetensors"
    return api.train("mnist", out=out, data_dir=data_dir, limit=12000, epochs=3, seed=1)


def run_cli(*args: str, stdin: str | bytes | None = None, env: dict | None = None, cwd: Path | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """The real `digitkit` process, as a user's shell would run it. Bytes on stdin (a file piped in) give bytes
    back on stdout and stderr; text gives text."""
    full_env = {**os.environ, "DIGITKIT_DATA": str(DATA), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "digitkit", *args], input=stdin, capture_output=True, text=not isinstance(stdin, bytes),
        env=full_env, cwd=cwd, timeout=timeout
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, needle: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.startswith("digitkit: error:")]
    assert lines and any(needle in l for l in lines), proc.stderr


def draw_digit(path: Path, digit: str, size=(120, 140), ink=0, paper=255, font_size=90, offset=(0, 0)) -> Path:
    from PIL import Image, ImageDraw, ImageFont

    require(FONT.is_file(), f"the DejaVu Sans font ({FONT})", "fonts-dejavu-core")
    font = ImageFont.truetype(str(FONT), font_size)
    img = Image.new("L", size, paper)
    ImageDraw.Draw(img).text((size[0] // 2 + offset[0], size[1] // 2 + offset[1]), digit, fill=ink, font=font, anchor="mm")
    img.save(path)
    return path
