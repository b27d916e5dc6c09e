"""Images end to end: MNIST, Fashion-MNIST and CIFAR-10 read into in-memory uint8 tensors, batched by index,
normalized and augmented as whole-batch tensor ops, channels-last for the convolution kernels; test-time views;
the test figures for training and `evaluate`; a user's photo or scan -> a label.

Device rule: the batches move their tensors to the training device once, in their constructor; every helper below
takes the device from its inputs (the model's parameters, the logits), so no caller keeps two devices in step."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
import torch.nn.functional as F

from digitkit.data.registry import Augment
from digitkit.data.transforms import augment as augment_batch
from digitkit.data.transforms import normalize, shifted
from digitkit.device import model_device
from digitkit.training.distributed import World, shard


@dataclass
class Normalization:
    mean: tuple[float, ...]
    std: tuple[float, ...]


def _to_input(x: torch.Tensor, norm: Normalization, device: torch.device, aug: Augment | None = None) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if aug is not None:
        x = augment_batch(x.float() / 255.0, aug)
    return normalize(x, norm.mean, norm.std).contiguous(memory_format=torch.channels_last)


def tta_views(hflip: bool) -> list[str]:
    """Test-time augmentation for a dataset: mirrored copies only where training mirrored the images."""
    return ["flip", "shift"] if hflip else ["shift"]


def augmented_logits(model: torch.nn.Module, x: torch.Tensor, tta: list[str] | tuple[str, ...] = ()) -> torch.Tensor:
    """Mean logits over test-time views of a normalized batch: as is, mirrored ("flip"), and moved one pixel
    up-left and down-right ("shift", half weight each). No views: the plain logits."""
    views = [(x, 1.0)]
    if "flip" in tta:
        views.append((x.flip(3), 1.0))
    if "shift" in tta:
        for d in (-1, 1):
            moved = shifted(x, d, d)
            views += [(moved, 0.5), (moved.flip(3), 0.5)] if "flip" in tta else [(moved, 1.0)]
    total = sum(w for _, w in views)
    out = None
    for view, weight in views:
        logits = model(view.contiguous(memory_format=torch.channels_last)).float() * (weight / total)
        out = logits if out is None else out + logits
    return out


@torch.inference_mode()
def logits_for(model: torch.nn.Module, x: torch.Tensor, norm: Normalization, batch_size: int = 1000,
               tta: list[str] | tuple[str, ...] = ()) -> torch.Tensor:
    """Logits for a whole uint8 tensor (on any device), in bounded batches run where the model is, averaged over
    the `tta` views; they stay on the model's device."""
    model.eval()
    device = model_device(model)
    out = [augmented_logits(model, _to_input(x[i : i + batch_size], norm, device), tta) for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0, device=device)


def loss_and_accuracy(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy, computed where the logits are (the labels follow them)."""
    if len(y) == 0:
        return float("nan"), float("nan")
    y = y.to(logits.device)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


class ImageBatches:
    """What the training loop draws from. The whole dataset lives on the training device (a few hundred MB at most): batches are gathered there by
    index, so a step copies nothing from the host."""

    def __init__(self, train_x, train_y, val_x, val_y, norm: Normalization, aug: Augment | None, device: torch.device):
        self.train_x, self.train_y, self.val_x, self.val_y = (t.to(device) for t in (train_x, train_y, val_x, val_y))
        self.norm, self.aug, self.device = norm, aug, device

    def steps_per_epoch(self, batch_size: int) -> int:
        return (len(self.train_x) + batch_size - 1) // batch_size

    def set_epoch(self, epoch: int, epochs: int) -> None:
        pass

    def train_batches(self, batch_size: int, order: torch.Generator | None = None, world: World = World()) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        perm = torch.randperm(len(self.train_x), generator=order).to(self.device)
        for start in range(0, len(perm), batch_size):
            idx = perm[start : start + batch_size]
            if len(idx) < world.size:  # too few left to give every rank one
                break
            idx = shard(idx, world)
            yield _to_input(self.train_x[idx], self.norm, self.device, self.aug), self.train_y[idx], len(idx)

    def loss(self, model, inputs, targets, label_smoothing):
        logits = model(inputs)
        loss = F.cross_entropy(logits, targets, label_smoothing=label_smoothing)
        return loss, (logits.detach().argmax(1) == targets).sum()

    def validate(self, model) -> tuple[float, float] | None:
        if len(self.val_y) == 0:
            return None
        return loss_and_accuracy(logits_for(model, self.val_x, self.norm), self.val_y)


def split_holdout(x: torch.Tensor, y: torch.Tensor, val_split: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=g)
    n_val = int(round(len(x) * val_split))
    val_idx, train_idx = order[:n_val], order[n_val:]
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


@dataclass
class Prediction:
    path: str
    label: str
    confidence: float
    top: list[tuple[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "label": self.label, "confidence": self.confidence,
                "top": [{"label": label, "confidence": c} for label, c in self.top]}


class ImageTask:
    kind = "image"
    models = ("cnn", "resnet")
    convolutional = True
    use = "predict"

    def dataset_name(self, name: str) -> str | None:
        from digitkit.data.registry import find_dataset

        spec = find_dataset(name)
        return spec.name if spec is not None else None

    def dataset_names(self) -> list[str]:
        from digitkit.data.registry import DATASETS

        return list(DATASETS)

    def model_base(self, cfg: Any, words: int = 10) -> dict[str, Any]:
        from digitkit.data.registry import get_dataset

        spec = get_dataset(cfg.dataset)
        return {"in_channels": spec.channels, "num_classes": len(spec.classes), "image_size": spec.size}

    def prepare(self, cfg: Any, folder: Path, device: torch.device, allow_download: bool, reporter: Any) -> Any:
        from digitkit.data.registry import get_dataset, load
        from digitkit.tasks import Prepared, model_config

        spec = get_dataset(cfg.dataset)
        splits = load(spec, folder, allow_download=allow_download)
        reporter.info(f"{spec.title}: {len(splits.train_y):,} train / {len(splits.test_y):,} test images from {splits.source}")
        if splits.note:
            reporter.warn(splits.note)
        # the validation split comes from the whole training set, and --limit caps only what is trained on: a quick
        # run (or a tuning trial) is then judged on as many held-out images as a full one, not on a noisy few
        train_x, train_y, val_x, val_y = split_holdout(splits.train_x, splits.train_y, cfg.val_split, cfg.seed)
        if cfg.limit is not None:
            train_x, train_y = train_x[: cfg.limit], train_y[: cfg.limit]
        norm = Normalization(spec.mean, spec.std)
        batches = ImageBatches(train_x, train_y, val_x, val_y, norm, spec.augment if cfg.augment else None, device)
        tta = tta_views(spec.augment.hflip) if cfg.tta else []

        def test(model: torch.nn.Module) -> dict[str, Any]:
            loss, accuracy = loss_and_accuracy(logits_for(model, splits.test_x, norm, tta=tta), splits.test_y)
            return {"test_accuracy": accuracy, "test_loss": loss, "test_samples": len(splits.test_y)}

        return Prepared(
            batches=batches,
            model_config=model_config(cfg, self.model_base(cfg)),
            dataset=spec.name,
            classes=list(spec.classes),
            input_meta={"kind": self.kind, "channels": spec.channels, "size": spec.size, "mean": list(spec.mean),
                        "std": list(spec.std), "preprocess": spec.preprocess, "tta": tta},
            data_info={"source": splits.source, "note": splits.note, "train": len(train_y), "val": len(val_y)},
            test=test,
            channels_last=True,
        )

    def evaluate(self, ckpt: Any, path: Path, model: torch.nn.Module, folder: Path, batch_size: int,
                 allow_download: bool, reporter: Any, dataset: str | None = None) -> Any:
        from digitkit.data.registry import get_dataset, load
        from digitkit.errors import DataError
        from digitkit.metrics import confusion_matrix, per_class
        from digitkit.tasks import EvalResult

        spec = get_dataset(dataset or ckpt.dataset)
        if list(spec.classes) != list(ckpt.classes):
            raise DataError(f"{spec.name}'s classes differ from the model's ({', '.join(ckpt.classes)})")
        splits = load(spec, folder, allow_download=allow_download)
        reporter.info(f"evaluating {path} on the {spec.title} test set ({len(splits.test_y):,} images)")
        norm = Normalization(tuple(ckpt.input["mean"]), tuple(ckpt.input["std"]))
        logits = logits_for(model, splits.test_x, norm, batch_size, ckpt.input.get("tta", [])).cpu()
        loss, acc = loss_and_accuracy(logits, splits.test_y)
        conf = confusion_matrix(splits.test_y, logits.argmax(1), len(ckpt.classes))
        return EvalResult(
            checkpoint=str(path), dataset=spec.name, samples=len(splits.test_y), accuracy=acc, loss=loss,
            classes=list(ckpt.classes), per_class=per_class(conf, list(ckpt.classes)), confusion=conf.tolist(),
            history=ckpt.history, note=splits.note,
        )

    def classify(self, ckpt: Any, paths: Iterable[str | os.PathLike], device: torch.device, top_k: int,
                 batch_size: int) -> Iterator[Any]:
        """Image files -> a `Prediction` or a `Failure` each, in input order, in batched forward passes."""
        import numpy as np

        from digitkit.data.preprocess import open_image, to_input
        from digitkit.errors import Failure, InputError

        net = ckpt.build_model(device).to(memory_format=torch.channels_last)
        k = min(top_k, len(ckpt.classes))
        norm = Normalization(tuple(ckpt.input["mean"]), tuple(ckpt.input["std"]))
        for chunk in _chunks((str(p) for p in paths), batch_size):
            arrays: list[Any] = []
            for path in chunk:
                try:
                    arrays.append(to_input(open_image(path), ckpt.input, name=path))
                except InputError as exc:
                    arrays.append(exc)
            good = [a for a in arrays if not isinstance(a, Exception)]
            if good:
                with torch.inference_mode():
                    x = normalize(torch.from_numpy(np.stack(good)).to(device), norm.mean, norm.std)
                    probs = torch.softmax(augmented_logits(net, x, ckpt.input.get("tta", [])), dim=1).cpu()
            row = 0
            for path, item in zip(chunk, arrays):
                if isinstance(item, Exception):
                    yield Failure(path, str(item))
                    continue
                values, indices = probs[row].topk(k)
                row += 1
                top = [(ckpt.classes[i], float(v)) for v, i in zip(values.tolist(), indices.tolist())]
                yield Prediction(path, top[0][0], top[0][1], top)


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


IMAGE = ImageTask()
