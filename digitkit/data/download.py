"""Fetch dataset files with checksum verification, written atomically so a broken transfer leaves nothing."""

from __future__ import annotations

import hashlib
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from digitkit.atomic import atomic_path

MIRROR_ENV_VAR = "DIGITKIT_MIRROR"
_TIMEOUT_S = 30  # for any one read of the socket
# for a whole file: a mirror that trickles (a byte every few seconds never trips the per-read timeout) is given up on
# once it has averaged under _MIN_RATE after _GRACE_S, and any transfer after _DEADLINE_S; the next mirror is tried
_DEADLINE_S = 1800
_GRACE_S = 30
_MIN_RATE = 20_000  # bytes per second: MNIST's largest file (9.9 MB) would take over 8 minutes


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: its name, its MD5, and the base URLs it can be fetched from."""

    name: str
    md5: str
    mirrors: tuple[str, ...]


class DownloadError(Exception):
    """Every mirror failed for one file; the message says why for each of them."""


class _ChecksumMismatch(Exception):
    pass


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def candidate_urls(remote: RemoteFile) -> list[str]:
    """`$DIGITKIT_MIRROR` (a local or company mirror holding the files by name) goes first."""
    bases = list(remote.mirrors)
    mirror = os.environ.get(MIRROR_ENV_VAR)
    if mirror:
        bases.insert(0, mirror)
    return [base.rstrip("/") + "/" + remote.name for base in bases]


def fetch(url: str, dest: Path) -> None:
    """Copy one URL to `dest`, within the deadline and above the least rate. Kept small so tests can swap it for a
    fake network."""
    request = urllib.request.Request(url, headers={"User-Agent": "digitkit"})
    start = time.monotonic()
    got = 0
    with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response, open(dest, "wb") as out:
        while chunk := response.read1(1 << 20):  # what has arrived, not a full megabyte: the clock is checked often
            out.write(chunk)
            got += len(chunk)
            elapsed = time.monotonic() - start
            if elapsed > _DEADLINE_S:
                raise TimeoutError(f"gave up after {_DEADLINE_S} s ({got:,} bytes)")
            if elapsed > _GRACE_S and got < _MIN_RATE * elapsed:
                raise TimeoutError(f"too slow: {got / elapsed:,.0f} bytes/s after {elapsed:.0f} s "
                                   f"(at least {_MIN_RATE:,} expected)")


def download(remote: RemoteFile, folder: Path) -> Path:
    """Download `remote` into `folder`, trying each mirror, keeping it only if its MD5 matches."""
    target = folder / remote.name
    reasons = []
    for url in candidate_urls(remote):
        try:
            with atomic_path(target) as tmp:
                fetch(url, tmp)
                got = md5sum(tmp)
                if got != remote.md5:
                    raise _ChecksumMismatch(f"{url}: checksum mismatch (md5 {got}, expected {remote.md5})")
            return target
        except _ChecksumMismatch as exc:
            reasons.append(str(exc))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reasons.append(f"{url}: {getattr(exc, 'reason', exc)}")
    raise DownloadError("; ".join(reasons) if reasons else "no mirror configured")
