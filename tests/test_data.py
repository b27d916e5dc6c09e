"""Datasets: data-dir resolution, real readers, system locations, downloads with checksums, the offline error."""

import functools
import gzip
import http.server
import os
import pickle
import shutil
import threading
import urllib.error

import numpy as np
import pytest
import torch

from conftest import FASHION_DEBIAN, require
from digitkit.data import download as dl
from digitkit.data.images import read_cifar_batch, read_idx
from digitkit.data.paths import resolve_data_dir, user_cache_dir
from digitkit.data.registry import get_dataset, load
from digitkit.errors import DataError

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("DIGITKIT_DATA", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("DIGITKIT_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir(None) == user_cache_dir() == tmp_path / "xdg" / "digitkit"


def test_real_mnist(data_dir):
    splits = load(get_dataset("mnist"), data_dir, allow_download=False)
    assert splits.train_x.shape == (60000, 1, 28, 28) and splits.train_x.dtype == torch.uint8
    assert splits.test_x.shape == (10000, 1, 28, 28)
    assert torch.bincount(splits.train_y).tolist() == MNIST_TRAIN_COUNTS
    assert torch.bincount(splits.test_y).tolist() == MNIST_TEST_COUNTS


def test_fashion_mnist_from_debian_location(tmp_path):
    require(FASHION_DEBIAN.is_file(), "Debian's Fashion-MNIST", "dataset-fashion-mnist")
    splits = load(get_dataset("fashion-mnist"), tmp_path, allow_download=False)  # empty data dir: falls back
    assert splits.source == "/usr/share/datasets/fashion-mnist"
    assert splits.train_x.shape == (60000, 1, 28, 28)
    assert torch.bincount(splits.test_y).tolist() == [1000] * 10


def test_partial_cifar10(data_dir):
    splits = load(get_dataset("cifar10"), data_dir, allow_download=False)
    assert splits.train_x.shape == (20000, 3, 32, 32) and splits.test_x.shape == (10000, 3, 32, 32)
    assert "20,000 of 50,000" in splits.note
    assert splits.train_y[:20].tolist() == [i % 10 for i in range(20)]  # the rebuilt batches cycle through classes


def test_idx_truncated_and_foreign(tmp_path):
    good = tmp_path / "labels-idx1-ubyte.gz"
    with gzip.open(good, "wb") as f:
        f.write(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2, 3, 4, 5]))
    assert read_idx(good, (5,)).tolist() == [1, 2, 3, 4, 5]
    short = tmp_path / "short-idx1-ubyte"
    short.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))
    with pytest.raises(DataError, match="truncated"):
        read_idx(short, (5,))
    foreign = tmp_path / "foreign.gz"
    with gzip.open(foreign, "wb") as f:
        f.write(b"PK\x03\x04 this is a zip header")
    with pytest.raises(DataError, match="not an IDX"):
        read_idx(foreign, (5,))


def test_dataset_contents_are_checked_before_training(tmp_path):
    """#19: wrong image dims, dims whose product would wrap, labels out of range, and a small .gz inflating to far
    more than the data should be: each one line, and never inflated past the expected size."""
    import struct

    from digitkit.data.images import read_idx_pair

    def idx(path, dims, body=b""):
        with gzip.open(path, "wb") as f:
            f.write(bytes([0, 0, 8, len(dims)]) + struct.pack(">" + "I" * len(dims), *dims) + body)
        return path

    labels = idx(tmp_path / "labels.gz", (3,), bytes([1, 2, 9]))
    wide = idx(tmp_path / "wide.gz", (3, 14, 56), bytes(3 * 14 * 56))
    with pytest.raises(DataError, match="holds 3x14x56 bytes, expected 3x28x28"):
        read_idx_pair(wide, labels, 3)
    wrapping = idx(tmp_path / "wrap.gz", (2**31, 2**31, 4), bytes(64))
    with pytest.raises(DataError, match="expected 3x28x28"):
        read_idx_pair(wrapping, labels, 3)
    images = idx(tmp_path / "images.gz", (3, 28, 28), bytes(3 * 28 * 28))
    assert read_idx_pair(images, labels, 3)[1].tolist() == [1, 2, 9]
    with pytest.raises(DataError, match="label 99 is outside 0-9"):
        read_idx_pair(images, idx(tmp_path / "bad.gz", (3,), bytes([1, 99, 2])), 3)
    bomb = tmp_path / "bomb.gz"
    with gzip.open(bomb, "wb") as f:  # 64 MB of zeros, 64 KB on disk, behind a header that claims 3 labels
        f.write(bytes([0, 0, 8, 1, 0, 0, 0, 3]))
        for _ in range(64):
            f.write(bytes(1 << 20))
    with pytest.raises(DataError, match="more bytes"):
        read_idx_pair(images, bomb, 3)
    cifar = tmp_path / "data_batch_1"
    with open(cifar, "wb") as f:
        pickle.dump({"data": np.zeros((2, 3072), np.uint8), "labels": [3, -1]}, f)
    with pytest.raises(DataError, match="label -1 is outside 0-9"):
        read_cifar_batch(cifar)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_cifar_reader_refuses_code_in_pickles(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": _Evil(), "labels": [0]}))
    with pytest.raises(DataError, match="not allowed"):
        read_cifar_batch(path)


def test_offline_and_missing_names_files_and_folder(monkeypatch, tmp_path):
    def offline(url, dest):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(dl, "fetch", offline)
    with pytest.raises(DataError) as err:
        load(get_dataset("mnist"), tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert "train-images-idx3-ubyte.gz" in message and "t10k-labels-idx1-ubyte.gz" in message
    assert str(tmp_path / "MNIST" / "raw") in message and "network is unreachable" in message
    assert not list((tmp_path / "MNIST" / "raw").glob("*"))  # nothing half-written left behind


def test_offline_error_through_cli(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from digitkit.cli import app

    monkeypatch.setattr(dl, "fetch", lambda url, dest: (_ for _ in ()).throw(urllib.error.URLError("offline")))
    result = CliRunner().invoke(app, ["train", "mnist", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.startswith("digitkit: error: MNIST not found") and result.stderr.count("\n") == 1


@pytest.fixture
def local_mirror(tmp_path, data_dir, monkeypatch):
    """A file server on loopback holding the real MNIST files; every other URL is unreachable."""
    served = tmp_path / "served"
    served.mkdir()
    for f in (data_dir / "MNIST" / "raw").glob("*.gz"):
        shutil.copy(f, served / f.name)
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    real_fetch = dl.fetch

    def only_local(url, dest):
        if not url.startswith(base):
            raise urllib.error.URLError("offline (test)")
        real_fetch(url, dest)

    monkeypatch.setattr(dl, "fetch", only_local)
    monkeypatch.setenv("DIGITKIT_MIRROR", base)
    yield served
    server.shutdown()


def test_download_verifies_checksums(local_mirror, tmp_path):
    target = tmp_path / "data"
    splits = load(get_dataset("mnist"), target)
    assert splits.source == str(target / "MNIST" / "raw") and len(splits.train_y) == 60000
    for remote in get_dataset("mnist").files:
        assert dl.md5sum(target / "MNIST" / "raw" / remote.name) == remote.md5


def test_download_rejects_corrupt_file(local_mirror, tmp_path):
    (local_mirror / "t10k-labels-idx1-ubyte.gz").write_bytes(b"tampered")
    target = tmp_path / "data"
    with pytest.raises(DataError, match="checksum mismatch"):
        load(get_dataset("mnist"), target)
    assert not (target / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").exists()
    assert not list((target / "MNIST" / "raw").glob("*.part"))


def test_a_trickling_mirror_is_given_up_on_and_leaves_nothing(tmp_path, monkeypatch):
    """A mirror sending a byte every 0.1 s never trips a per-read timeout; the least average rate ends it, the next
    mirror is tried, and no partial file stays."""
    import time

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(200):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(dl, "_GRACE_S", 0.5)
    monkeypatch.setattr(dl, "_MIN_RATE", 1000)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    remote = dl.RemoteFile("slow.gz", "0" * 32, (base, "http://127.0.0.1:9/none"))
    start = time.monotonic()
    with pytest.raises(dl.DownloadError, match="too slow") as err:
        dl.download(remote, tmp_path)
    server.shutdown()
    assert time.monotonic() - start < 10 and "127.0.0.1:9" in str(err.value)  # the next mirror was tried too
    assert list(tmp_path.iterdir()) == []
