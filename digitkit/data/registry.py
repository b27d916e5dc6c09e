"""Dataset name -> where its files live, how to read them, its classes, shape and normalization."""

from __future__ import annotations

import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from digitkit.data.download import DownloadError, RemoteFile, download
from digitkit.errors import DataError


@dataclass(frozen=True)
class Augment:
    """Random per-sample geometry applied to whole training batches."""

    rotate_deg: float = 0.0
    translate_px: float = 0.0
    scale: float = 0.0
    hflip: bool = False
    integer_shift: bool = False
    padding: str = "zeros"  # what a shift brings in at the edges: grid_sample's "zeros" or "reflection"
    cutout: int = 0  # side of a square zeroed at a random place in each image (0: none)
    thicken: float = 0.0  # the share of images whose strokes are made a pixel bolder all round (a 3x3 dilation)


@dataclass(frozen=True)
class ImageDataset:
    name: str
    title: str
    classes: tuple[str, ...]
    channels: int
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    preprocess: str  # how a user's picture becomes an input: "mnist", "gray" or "rgb"
    augment: Augment
    folder: str  # relative to the data directory
    files: tuple[RemoteFile, ...]
    system_dirs: tuple[str, ...] = field(default=())


@dataclass
class Splits:
    train_x: "object"
    train_y: "object"
    test_x: "object"
    test_y: "object"
    source: str  # the folder the files came from
    note: str = ""  # e.g. that only part of a dataset was present


_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist", "https://yann.lecun.com/exdb/mnist")
_FASHION_MIRRORS = ("https://fashion-mnist.s3-website.eu-central-1.amazonaws.com",)
_CIFAR_MIRRORS = ("https://www.cs.toronto.edu/~kriz",)
_IDX_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _idx_files(md5s: tuple[str, str, str, str], mirrors: tuple[str, ...]) -> tuple[RemoteFile, ...]:
    return tuple(RemoteFile(n, m, mirrors) for n, m in zip(_IDX_NAMES, md5s))


DATASETS: dict[str, ImageDataset] = {
    "mnist": ImageDataset(
        name="mnist",
        title="MNIST",
        classes=tuple(str(d) for d in range(10)),
        channels=1,
        size=28,
        mean=(0.1307,),
        std=(0.3081,),
        preprocess="mnist",
        # pens, markers and printed digits are bolder than MNIST's strokes: a third of the digits are made bolder
        augment=Augment(rotate_deg=10.0, translate_px=2.0, scale=0.1, thicken=0.3),
        folder="MNIST/raw",
        files=_idx_files(
            ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
             "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"),
            _MNIST_MIRRORS,
        ),
    ),
    "fashion-mnist": ImageDataset(
        name="fashion-mnist",
        title="Fashion-MNIST",
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        channels=1,
        size=28,
        mean=(0.2860,),
        std=(0.3530,),
        preprocess="gray",
        augment=Augment(translate_px=2.0, hflip=True, integer_shift=True),
        folder="FashionMNIST/raw",
        files=_idx_files(
            ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
             "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"),
            _FASHION_MIRRORS,
        ),
        system_dirs=("/usr/share/datasets/fashion-mnist",),  # Debian's dataset-fashion-mnist
    ),
    "cifar10": ImageDataset(
        name="cifar10",
        title="CIFAR-10",
        classes=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        channels=3,
        size=32,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        preprocess="rgb",
        augment=Augment(translate_px=4.0, hflip=True, integer_shift=True, padding="reflection", cutout=16),
        folder="cifar-10-batches-py",
        files=(RemoteFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", _CIFAR_MIRRORS),),
    ),
}

_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))


def find_dataset(name: str) -> ImageDataset | None:
    """The image dataset a user's spelling names ("Fashion_MNIST", "cifar-10", ...), or None."""
    key = name.lower().replace("_", "-")
    key = {"fashion": "fashion-mnist", "fashionmnist": "fashion-mnist", "cifar": "cifar10", "cifar-10": "cifar10"}.get(key, key)
    return DATASETS.get(key)


def get_dataset(name: str) -> ImageDataset:
    spec = find_dataset(name)
    if spec is None:
        raise DataError(f"unknown image dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return spec


def _missing_message(spec: ImageDataset, folder: Path, missing: list[str], why: str) -> str:
    return (
        f"{spec.title} not found: missing {', '.join(missing)} in {folder} and the download failed ({why}). "
        f"Put the files in {folder}/ or point --data-dir / $DIGITKIT_DATA at a folder that has {spec.folder}/."
    )


def load(spec: ImageDataset, data_dir: Path, allow_download: bool = True) -> Splits:
    """Read a dataset from `data_dir` (or a system location), downloading what is missing if allowed."""
    if spec.name == "cifar10":
        return _load_cifar(spec, data_dir, allow_download)
    return _load_idx(spec, data_dir, allow_download)


def _load_idx(spec: ImageDataset, data_dir: Path, allow_download: bool) -> Splits:
    from digitkit.data.images import read_idx_pair

    home = data_dir / spec.folder
    folders = [home] + [Path(d) for d in spec.system_dirs]
    found = next((f for f in folders if all((f / r.name).is_file() for r in spec.files)), None)
    if found is None:
        missing = [r.name for r in spec.files if not (home / r.name).is_file()]
        if not allow_download:
            raise DataError(_missing_message(spec, home, missing, "downloads are off"))
        for remote in spec.files:
            if remote.name in missing:
                try:
                    download(remote, home)
                except (DownloadError, OSError) as exc:
                    raise DataError(_missing_message(spec, home, missing, str(exc))) from None
        found = home
    classes = len(spec.classes)
    train_x, train_y = read_idx_pair(found / _IDX_NAMES[0], found / _IDX_NAMES[1], 60000, spec.size, classes)
    test_x, test_y = read_idx_pair(found / _IDX_NAMES[2], found / _IDX_NAMES[3], 10000, spec.size, classes)
    return Splits(train_x, train_y, test_x, test_y, source=str(found))


def _load_cifar(spec: ImageDataset, data_dir: Path, allow_download: bool) -> Splits:
    import torch

    from digitkit.data.images import read_cifar_batch

    folder = data_dir / spec.folder
    present = [n for n in _CIFAR_TRAIN if (folder / n).is_file()]
    if not present or not (folder / "test_batch").is_file():
        missing = [n for n in (*_CIFAR_TRAIN, "test_batch") if not (folder / n).is_file()]
        if not allow_download:
            raise DataError(_missing_message(spec, folder, missing, "downloads are off"))
        try:
            archive = download(spec.files[0], data_dir)
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(data_dir, filter="data")
        except (DownloadError, OSError, tarfile.TarError) as exc:
            raise DataError(_missing_message(spec, folder, missing, str(exc))) from None
        present = [n for n in _CIFAR_TRAIN if (folder / n).is_file()]
    parts = [read_cifar_batch(folder / n) for n in present]
    test_x, test_y = read_cifar_batch(folder / "test_batch")
    note = ""
    if len(present) < len(_CIFAR_TRAIN):
        note = f"partial CIFAR-10: training on {', '.join(present)} ({sum(len(p[1]) for p in parts):,} of 50,000 images)"
    return Splits(
        torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), test_x, test_y, source=str(folder), note=note
    )
