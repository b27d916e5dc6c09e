"""The checks every user-supplied input file gets before a decoder sees it."""

from __future__ import annotations

import os
from pathlib import Path

from digitkit.errors import InputError


def check_input_file(path: str | os.PathLike, kind: str) -> Path:
    """One clear error for a path that is missing, a folder, empty, unreadable, or no path at all (too long, a NUL
    byte from binary stdin); `kind` names what was expected. The error is this file's: a batch goes on."""
    if "\0" in str(path):  # binary bytes read from stdin as paths
        raise InputError(f"{str(path)!r}: not a usable path (it holds a NUL byte)")
    p = Path(path)
    try:
        if not p.exists():
            raise InputError(f"{path}: no such file")
        if p.is_dir():
            raise InputError(f"{path}: is a directory, not {kind}")
        if p.stat().st_size == 0:
            raise InputError(f"{path}: empty file")
        if not os.access(p, os.R_OK):
            raise InputError(f"{path}: permission denied")
    except OSError as exc:  # a name too long, a folder on the way that cannot be searched, ...
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return p
