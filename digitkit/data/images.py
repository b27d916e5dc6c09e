"""Readers for the image datasets' standard raw files (IDX `.gz`, CIFAR pickles) into uint8 tensors.

Everything is read once into memory as `uint8 [N, C, H, W]`; batching, normalization and augmentation
then work on whole tensors, which is where most of the CPU speed comes from.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import torch

from digitkit.errors import DataError

_IDX_UBYTE = 0x08


def read_idx(path: Path, expect_dims: int, expect_count: int | None = None) -> torch.Tensor:
    """Read an IDX file (gzip'd or not) of unsigned bytes, checking its header against its size."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: unreadable ({exc})") from None
    if len(raw) < 4 + 4 * expect_dims:
        raise DataError(f"{path}: too short to be an IDX file")
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != _IDX_UBYTE or ndim != expect_dims:
        raise DataError(f"{path}: not an IDX file of {expect_dims}-d unsigned bytes")
    shape = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    body = memoryview(raw)[4 + 4 * ndim :]
    if len(body) != int(np.prod(shape)):
        raise DataError(f"{path}: header says {shape} but holds {len(body)} bytes (truncated?)")
    if expect_count is not None and shape[0] != expect_count:
        raise DataError(f"{path}: holds {shape[0]} items, expected {expect_count}")
    return torch.from_numpy(np.frombuffer(body, dtype=np.uint8).reshape(shape).copy())


def read_idx_pair(images: Path, labels: Path, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = read_idx(images, 3, count).unsqueeze(1)  # [N, 1, 28, 28]
    y = read_idx(labels, 1, count).long()
    return x, y


class _CifarUnpickler(pickle.Unpickler):
    """Only the few numpy globals a CIFAR batch needs may be loaded: no arbitrary code from a data file."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def read_cifar_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One CIFAR-10 python batch -> (uint8 [N, 3, 32, 32], int64 [N])."""
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, encoding="latin1").load()
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: not a readable CIFAR-10 batch ({exc})") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise DataError(f"{path}: unexpected CIFAR-10 batch shape {data.shape}")
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels)
