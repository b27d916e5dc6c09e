"""Readers for the image datasets' standard raw files (IDX `.gz`, CIFAR pickles) into uint8 tensors.

Everything is read once into memory as `uint8 [N, C, H, W]`; batching, normalization and augmentation
then work on whole tensors, which is where most of the CPU speed comes from.
"""

from __future__ import annotations

import gzip
import math
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from digitkit.errors import DataError

_IDX_UBYTE = 0x08


def read_idx(path: Path, expect_shape: tuple[int, ...]) -> torch.Tensor:
    """Read an IDX file (gzip'd or not) of unsigned bytes of exactly `expect_shape`, checking its header against its
    size. No more than that shape's bytes (plus one) are ever inflated: a small .gz that expands to gigabytes is
    refused after reading what the data should be."""
    dims = len(expect_shape)
    limit = 4 + 4 * dims + math.prod(expect_shape)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read(limit + 1)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: unreadable ({exc})") from None
    if len(raw) < 4 + 4 * dims:
        raise DataError(f"{path}: too short to be an IDX file")
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != _IDX_UBYTE or ndim != dims:
        raise DataError(f"{path}: not an IDX file of {dims}-d unsigned bytes")
    shape = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    if shape != tuple(expect_shape):
        what = "x".join(map(str, shape))
        raise DataError(f"{path}: holds {what} bytes, expected {'x'.join(map(str, expect_shape))}")
    body = memoryview(raw)[4 + 4 * ndim :]
    if len(body) != math.prod(shape):
        raise DataError(f"{path}: header says {shape} but holds " +
                        ("more" if len(body) > math.prod(shape) else f"{len(body)}") + " bytes (truncated or padded?)")
    return torch.from_numpy(np.frombuffer(body, dtype=np.uint8).reshape(shape).copy())


def read_idx_pair(images: Path, labels: Path, count: int, size: int = 28, classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """count images of size x size and their labels, each in 0..classes-1."""
    x = read_idx(images, (count, size, size)).unsqueeze(1)  # [N, 1, size, size]
    y = read_idx(labels, (count,)).long()
    check_labels(y, classes, labels)
    return x, y


def check_labels(y: torch.Tensor, classes: int, path: Path) -> None:
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= classes):
        bad = int(y.max()) if int(y.max()) >= classes else int(y.min())
        raise DataError(f"{path}: label {bad} is outside 0-{classes - 1}")


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
        raise DataError(f"{path}: unexpected CIFAR-10 batch shape {data.shape} with {len(labels)} labels")
    check_labels(torch.from_numpy(labels), 10, path)
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels)
