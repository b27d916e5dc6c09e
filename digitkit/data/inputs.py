"""The checks every user-supplied input file gets before a decoder sees it."""

from __future__ import annotations

import os
from pathlib import Path

from digitkit.errors import InputError


def check_input_file(path: str | os.PathLike, kind: str) -> Path:
    """One clear error for a path that is missing, a folder, or empty; `kind` names what was expected."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{path}: no such file")
    if p.is_dir():
        raise InputError(f"{path}: is a directory, not {kind}")
    if p.stat().st_size == 0:
        raise InputError(f"{path}: empty file")
    return p
