"""Where datasets live: `--data-dir`, else `$DIGITKIT_DATA`, else the user's cache directory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV_VAR = "DIGITKIT_DATA"


def user_cache_dir() -> Path:
    """The per-user cache folder, following each platform's convention."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "digitkit"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "digitkit"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "digitkit"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Pick the data directory; an explicit argument wins over the environment, which wins over the cache."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return user_cache_dir()
