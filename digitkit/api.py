"""The tasks as plain functions a user can import and script: train, evaluate, predict.

Nothing here prints: progress goes to the `reporter` handed in (see `digitkit.report`), results are returned.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from digitkit.errors import CheckpointError, DataError, DigitkitError, InputError
from digitkit.report import Reporter
from digitkit.training.config import TrainConfig

_RESUME_MAY_CHANGE = {"epochs", "target_accuracy", "patience", "precision", "compile"}  # a onecycle run cannot change epochs: see train()


class TrainingInterrupted(DigitkitError):
    """Ctrl-C during training: the last completed epoch is safe on disk."""

    exit_code = 130


@dataclass
class TrainResult:
    checkpoint: Path
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    stop_reason: str


def resolve_config(dataset: str = "", *, resume: str | os.PathLike | None = None, device: str = "auto",
                   **options: Any) -> TrainConfig:
    """The effective training config: built-in defaults < preset (with its settings for the device, see
    presets.CUDA_TRAIN) < `options`; or, with `resume`, the checkpoint's own config with the few changes a resumed
    run allows. This is what `--print-config` shows."""
    if resume is not None:
        from digitkit import checkpoint as ckpt_io

        return _resumed_config(ckpt_io.load(resume), options, dataset)
    from digitkit.device import pick_device

    return _resolve_config(dataset, options, pick_device(device).type)


def _dataset_name(dataset: str) -> str:
    from digitkit.data.registry import get_dataset
    from digitkit.data.speech import get_speech_dataset, is_speech

    return get_speech_dataset(dataset).name if is_speech(dataset) else get_dataset(dataset).name


def _resumed_config(previous: Any, options: dict[str, Any], dataset: str | None = None) -> TrainConfig:
    cfg = TrainConfig.from_dict(previous.train_config)
    named = _dataset_name(dataset) if dataset else cfg.dataset
    if named != cfg.dataset:
        raise DigitkitError(f"the checkpoint to resume was trained on {cfg.dataset}, not {named}: "
                            "leave out DATASET to continue it, or give a checkpoint of that dataset")
    changed = {k for k, v in options.items() if v is not None and k in cfg.to_dict() and v != getattr(cfg, k)}
    if changed - _RESUME_MAY_CHANGE:
        raise DigitkitError(
            f"cannot change {', '.join(sorted(changed - _RESUME_MAY_CHANGE))} when resuming; "
            f"only {', '.join(sorted(_RESUME_MAY_CHANGE))} may differ from the checkpoint's run"
        )
    if "epochs" in changed and cfg.schedule == "onecycle":
        raise DigitkitError("cannot change --epochs when resuming a onecycle run: its schedule spans the original epochs")
    for key in changed:
        setattr(cfg, key, options[key])
    _check_config(cfg)
    return cfg


def _resolve_config(dataset: str, options: dict[str, Any], device_type: str = "cpu") -> TrainConfig:
    from digitkit.data.speech import is_speech
    from digitkit.models.registry import IMAGE_MODELS, MODEL_NAMES, SPEECH_MODELS
    from digitkit.presets import apply_preset

    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise DigitkitError(f"unknown training option(s): {', '.join(unknown)}")
    speech = is_speech(dataset)
    dataset = _dataset_name(dataset)
    model = options.get("model") or ("lstm" if speech else "cnn")
    if model not in MODEL_NAMES:
        raise DigitkitError(f"unknown model {model!r}; choose one of: {', '.join(MODEL_NAMES)}")
    family = SPEECH_MODELS if speech else IMAGE_MODELS
    if model not in family:
        raise DigitkitError(f"model {model!r} does not fit {dataset}; use one of: {', '.join(family)}")
    preset = options.get("preset") or "default"
    model_options, train_overrides = apply_preset(preset, model, device_type)
    values = {**train_overrides, **{k: v for k, v in options.items() if v is not None}}
    values["model_options"] = {**model_options, **(options.get("model_options") or {})}
    values.update(dataset=dataset, model=model, preset=preset)
    cfg = TrainConfig(**values)
    _check_config(cfg)
    _check_model_options(cfg, speech)
    return cfg


def _check_model_options(cfg: TrainConfig, speech: bool) -> None:
    """Build the model once on the meta device (no memory, no data), so a bad `-o` option fails at once instead of
    after the dataset has loaded. The speech vocabulary comes from the data: a stand-in of ten words is used here."""
    import torch

    from digitkit.data.registry import get_dataset
    from digitkit.training.prepare import build_model, image_model_base, model_config, speech_model_base

    base = speech_model_base(cfg, words=10) if speech else image_model_base(get_dataset(cfg.dataset))
    with torch.device("meta"):
        build_model(cfg, model_config(cfg, base))


def _check_config(cfg: TrainConfig) -> None:
    problems = []
    if cfg.epochs < 1:
        problems.append("--epochs must be at least 1")
    if cfg.batch_size < 1:
        problems.append("--batch-size must be at least 1")
    if not cfg.lr > 0:
        problems.append("--lr must be positive")
    if not 0 <= cfg.val_split < 1:
        problems.append("--val-split must be in [0, 1)")
    if cfg.limit is not None and cfg.limit < 1:
        problems.append("--limit must be at least 1")
    if cfg.patience < 0:
        problems.append("--patience must be 0 (off) or more")
    if cfg.schedule not in ("plateau", "onecycle"):
        problems.append(f"--schedule must be plateau or onecycle, not {cfg.schedule!r}")
    if cfg.precision not in ("auto", "fp32", "bf16", "fp16"):
        problems.append(f"--precision must be auto, fp32, bf16 or fp16, not {cfg.precision!r}")
    if cfg.optimizer not in ("adam", "adamw", "sgd"):
        problems.append(f"--optimizer must be adam, adamw or sgd, not {cfg.optimizer!r}")
    if cfg.target_accuracy is not None and not 0 < cfg.target_accuracy <= 1:
        problems.append("--target-accuracy is a fraction in (0, 1], e.g. 0.99")
    if cfg.target_accuracy is not None and cfg.val_split == 0:
        problems.append("--target-accuracy is checked on validation data: give a --val-split above 0")
    if problems:
        raise DigitkitError("; ".join(problems))


def _check_writable(out: Path) -> None:
    """Refuse an output path that cannot be written before spending minutes on training."""
    if out.is_dir():
        raise CheckpointError(f"cannot write checkpoint {out}: it is a directory")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint {out}: {exc.strerror or exc}") from None
    if not os.access(out.parent, os.W_OK):
        raise CheckpointError(f"cannot write checkpoint {out}: {out.parent} is not writable")


def train(
    dataset: str | None = None,
    *,
    out: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    device: str = "auto",
    reporter: Reporter | None = None,
    allow_download: bool = True,
    epoch_callback: Callable[[dict[str, Any]], None] | None = None,
    test: bool = True,
    **options: Any,
) -> TrainResult:
    """Train a model on a dataset and write a checkpoint after every epoch (so Ctrl-C loses nothing).

    `options` are `TrainConfig` fields (epochs, batch_size, lr, model, preset, model_options, ...); `dataset`
    defaults to mnist. With `resume`, the checkpoint's own config and dataset are used (a `dataset` given must be
    the same), and only epochs, target_accuracy, patience, precision and compile may change.
    `epoch_callback` sees each epoch's history row (and may raise to stop, as tuning's pruning does);
    `test=False` skips the final test-set pass. Under torchrun every rank calls this; rank 0 writes and reports.
    """
    from digitkit import checkpoint as ckpt_io
    from digitkit.device import pick_device
    from digitkit.training import distributed

    reporter = reporter or Reporter()
    dev = distributed.local_device(pick_device(device))
    previous = None
    if resume is not None:
        previous = ckpt_io.load(resume)
        if previous.train_state is None:
            raise CheckpointError(f"{resume}: holds no training state to resume from (it was saved for deployment only)")
        cfg = _resumed_config(previous, options, dataset)
        out = Path(out) if out is not None else Path(resume)
    else:
        cfg = _resolve_config(dataset or "mnist", options, dev.type)
        out = Path(out) if out is not None else Path("runs") / f"{cfg.dataset}-{cfg.model}.safetensors"

    world = distributed.join(dev)
    if not world.is_main:
        reporter = Reporter()
    try:
        result = _train(cfg, out, previous, resume, dev, world, data_dir, allow_download, reporter, epoch_callback, test)
    except BaseException:
        distributed.leave(world, finished=False)
        raise
    distributed.leave(world)
    return result


def _train(cfg: TrainConfig, out: Path, previous: Any, resume: Any, dev: Any, world: Any, data_dir: Any,
           allow_download: bool, reporter: Reporter, epoch_callback: Any, test: bool) -> TrainResult:
    import time

    import torch

    from digitkit import checkpoint as ckpt_io
    from digitkit.data.paths import resolve_data_dir
    from digitkit.data.speech import is_speech
    from digitkit.models.registry import config_to_dict
    from digitkit.training.callbacks import EarlyStopping
    from digitkit.training.loop import LoopState, fit, make_optimizer, make_scheduler, pick_precision
    from digitkit.training.prepare import build_model, prepare_image, prepare_speech
    from digitkit.training.state import optimizer_from_tensors, optimizer_to_tensors

    started = time.perf_counter()
    # cuDNN's benchmark mode stays off: on an H100 its search cost the first --preset fast epoch 3-4 s (0.8 s
    # without it), more than it saves on nets this small
    precision = pick_precision(cfg.precision, dev, convolutional=not is_speech(cfg.dataset))
    if world.is_main:
        _check_writable(out)
    torch.manual_seed(cfg.seed)
    folder = resolve_data_dir(data_dir)
    if is_speech(cfg.dataset):
        prep = prepare_speech(cfg, folder, dev, reporter)
    else:
        prep = prepare_image(cfg, folder, dev, allow_download, reporter)
    model_cfg = prep.model_config
    model = build_model(cfg, model_cfg).to(dev)
    if prep.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg, prep.task.steps_per_epoch(cfg.batch_size))
    early = EarlyStopping(cfg.patience)
    state = LoopState()
    if previous is not None:
        ts = previous.train_state
        try:
            model.load_state_dict({k[len("model."):]: v for k, v in previous.train_tensors.items() if k.startswith("model.")})
            optimizer_from_tensors(optimizer, previous.train_tensors, ts["optimizer"])
            scheduler.load_state_dict(ts["scheduler"])
            early.load_state_dict(ts["early_stopping"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"{resume}: training state does not match its model ({exc})") from None
        state = LoopState(epoch=int(ts["epoch"]), history=list(previous.history),
                          best_weights={k: v.to(dev) for k, v in previous.weights.items()})
        if ts.get("status") == "complete" and not (state.epoch < cfg.epochs and ts.get("stop_reason", "").startswith("finished")):
            reporter.info(f"{resume}: training already finished ({ts.get('stop_reason', 'complete')}); nothing to do")
            return TrainResult(Path(resume), previous.metrics, previous.history, ts.get("stop_reason", ""))
        reporter.info(f"resuming {resume} after epoch {state.epoch}")
    n_params = sum(p.numel() for p in model.parameters())
    info = {**prep.data_info, "processes": world.size}
    where = f"{dev}" + (f", {world.size} processes" if world.distributed else "")
    reporter.info(f"model {cfg.model} ({n_params:,} parameters) on {where}; {info['train']:,} train / {info['val']:,} val")
    trained = model
    if world.distributed:
        from torch.nn.parallel import DistributedDataParallel

        trained = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    if cfg.compile:
        trained = torch.compile(trained)
    if precision.dtype is not None:
        reporter.info(f"mixed precision: {str(precision.dtype).removeprefix('torch.')} autocast on {precision.device_type}")

    def snapshot(st: LoopState, status: str, metrics: dict[str, Any]) -> ckpt_io.Checkpoint:
        optim_tensors, optim_meta = optimizer_to_tensors(optimizer)
        train_tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        train_tensors.update(optim_tensors)
        return ckpt_io.Checkpoint(
            model_name=cfg.model,
            model_config=config_to_dict(model_cfg),
            dataset=prep.dataset,
            classes=prep.classes,
            input=prep.input_meta,
            weights=st.best_weights,
            train_config=cfg.to_dict(),
            history=st.history,
            metrics=metrics,
            versions=ckpt_io.versions(),
            train_state={
                "epoch": st.epoch,
                "status": status,
                "stop_reason": st.stop_reason,
                "early_stopping": early.state_dict(),
                "scheduler": scheduler.state_dict(),
                "optimizer": optim_meta,
                "data": info,
            },
            train_tensors=train_tensors,
        )

    def on_epoch_end(st: LoopState) -> None:
        if world.is_main:
            ckpt_io.save(out, snapshot(st, "running", {"best_val_loss": early.state_dict()["best"]}))
        if epoch_callback is not None:
            epoch_callback(st.history[-1])

    setup_seconds = time.perf_counter() - started
    try:
        state = fit(trained, optimizer, scheduler, early, prep.task, cfg, state, reporter, on_epoch_end, world, model, precision)
    except KeyboardInterrupt:
        if state.epoch > 0 or previous is not None:
            raise TrainingInterrupted(
                f"interrupted during epoch {state.epoch + 1}; epoch {state.epoch} is saved in {out}; "
                f"continue with: digitkit train --resume {out}"
            ) from None
        raise TrainingInterrupted("interrupted before the first epoch finished; nothing was saved") from None

    reporter.info(state.stop_reason)
    model.load_state_dict(state.best_weights)
    model.eval()
    best = min(state.history, key=lambda r: (r["val_loss"] if r["val_loss"] is not None else r["train_loss"]))
    tested = time.perf_counter()
    scores = prep.test(model) if test and world.is_main else {}
    metrics = {
        **scores,
        "val_accuracy": best["val_accuracy"],
        "val_loss": best["val_loss"],
        "best_epoch": best["epoch"],
        "epochs_run": state.epoch,
        "train_seconds": sum(r["seconds"] for r in state.history),
        # this process's wall time outside the epochs: reading the data onto the device and building the model,
        # and the final test pass
        "setup_seconds": setup_seconds,
        "test_seconds": time.perf_counter() - tested if scores else 0.0,
        "dataset_note": info["note"],
    }
    if world.is_main:
        ckpt_io.save(out, snapshot(state, "complete", metrics))
    metrics = world.share(metrics)
    return TrainResult(out, metrics, state.history, state.stop_reason)


@dataclass
class EvalResult:
    checkpoint: str
    dataset: str
    samples: int
    accuracy: float
    loss: float
    classes: list[str]
    per_class: list[dict[str, Any]]
    confusion: list[list[int]]
    history: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""
    sequence_wer: float | None = None  # speech: word error rate on connected strings joined from test recordings
    sequences: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _checkpoint_path(checkpoint: str | os.PathLike | None, kind: str = "image") -> Path:
    from digitkit.weights import shipped

    return Path(checkpoint) if checkpoint is not None else shipped(kind)


def evaluate(
    checkpoint: str | os.PathLike | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    device: str = "auto",
    batch_size: int = 1000,
    plot: str | os.PathLike | None = None,
    curves: str | os.PathLike | None = None,
    allow_download: bool = True,
    reporter: Reporter | None = None,
) -> EvalResult:
    """Test-set accuracy, loss, per-class precision/recall/F1 and confusion matrix of a checkpoint.

    With no checkpoint, the shipped pretrained model is evaluated on its own dataset.
    """
    from digitkit import checkpoint as ckpt_io
    from digitkit.data.paths import resolve_data_dir
    from digitkit.data.registry import get_dataset, load
    from digitkit.device import pick_device
    from digitkit.metrics import confusion_matrix, per_class
    from digitkit.training.image_task import Normalization, logits_for, loss_and_accuracy

    reporter = reporter or Reporter()
    path = _checkpoint_path(checkpoint)
    ckpt = ckpt_io.load(path)
    if batch_size < 1:
        raise DigitkitError("--batch-size must be at least 1")
    dev = pick_device(device)
    model = ckpt.build_model(dev)
    if ckpt.input.get("kind") == "speech":
        result = _evaluate_speech(ckpt, path, model, resolve_data_dir(data_dir), reporter)
        _plots(result, ckpt, path, plot, curves, reporter)
        return result
    spec = get_dataset(ckpt.dataset)
    splits = load(spec, resolve_data_dir(data_dir), allow_download=allow_download)
    reporter.info(f"evaluating {path} on the {spec.title} test set ({len(splits.test_y):,} images)")
    norm = Normalization(tuple(ckpt.input["mean"]), tuple(ckpt.input["std"]))
    logits = logits_for(model, splits.test_x, norm, batch_size, ckpt.input.get("tta", [])).cpu()
    loss, acc = loss_and_accuracy(logits, splits.test_y)
    conf = confusion_matrix(splits.test_y, logits.argmax(1), len(ckpt.classes))
    result = EvalResult(
        checkpoint=str(path), dataset=spec.name, samples=len(splits.test_y), accuracy=acc, loss=loss,
        classes=list(ckpt.classes), per_class=per_class(conf, list(ckpt.classes)), confusion=conf.tolist(),
        history=ckpt.history, note=splits.note,
    )
    _plots(result, ckpt, path, plot, curves, reporter)
    return result


def _plots(result: EvalResult, ckpt: Any, path: Path, plot: Any, curves: Any, reporter: Reporter) -> None:
    if plot is not None:
        from digitkit.plots import confusion_png

        confusion_png(result.confusion, result.classes, Path(plot), f"{result.dataset} test: accuracy {result.accuracy:.2%}")
        reporter.info(f"wrote {plot}")
    if curves is not None:
        from digitkit.plots import curves_png

        curves_png(ckpt.history, Path(curves), f"{path.name}: {ckpt.model_name} on {result.dataset}")
        reporter.info(f"wrote {curves}")


OTHER = "(other)"  # speech: a clip decoded as no word or as several words


def _evaluate_speech(ckpt: Any, path: Path, model: Any, folder: Path, reporter: Reporter) -> EvalResult:
    import torch

    from digitkit.data.audio import LogMel
    from digitkit.metrics import confusion_matrix, per_class
    from digitkit.training.config import TrainConfig
    from digitkit.training.prepare import load_speech_splits, score_speech_test

    cfg = TrainConfig.from_dict(ckpt.train_config)
    spec, splits = load_speech_splits(ckpt.dataset, folder, cfg.val_split, cfg.seed, cfg.holdout_speaker, cfg.words)
    if splits.vocab != ckpt.classes:
        raise DataError(f"the words in {splits.source} ({', '.join(splits.vocab)}) differ from the model's ({', '.join(ckpt.classes)})")
    sr = int(ckpt.input["sample_rate"])
    reporter.info(f"evaluating {path} on the {spec.title} test recordings" + (f" ({splits.note})" if splits.note else ""))
    score = score_speech_test(model, splits.test, list(ckpt.classes), sr, LogMel(sr, int(ckpt.input["n_mels"])), reporter)
    n = len(ckpt.classes)
    predicted = torch.tensor([h[0] - 1 if len(h) == 1 else n for h in score.hyps], dtype=torch.long)
    conf = confusion_matrix(torch.tensor(score.tokens) - 1, predicted, n + 1)
    classes = list(ckpt.classes) + [OTHER]
    return EvalResult(
        checkpoint=str(path), dataset=spec.name, samples=len(score.tokens), accuracy=score.accuracy, loss=score.loss,
        classes=classes, per_class=[row for row in per_class(conf, classes) if row["class"] != OTHER],
        confusion=conf.tolist(), history=ckpt.history, note=splits.note, sequence_wer=score.sequence_wer,
        sequences=score.sequences,
    )


@dataclass
class Prediction:
    path: str
    label: str
    confidence: float
    top: list[tuple[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "label": self.label, "confidence": self.confidence,
                "top": [{"label": label, "confidence": c} for label, c in self.top]}


@dataclass
class Failure:
    path: str
    error: str


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def predict(
    paths: Iterable[str | os.PathLike],
    *,
    model: str | os.PathLike | None = None,
    top_k: int = 1,
    batch_size: int = 256,
    device: str = "cpu",
) -> Iterator[Prediction | Failure]:
    """Classify image files, in input order; one loaded model, batched forward passes of at most `batch_size`.

    A file that cannot be used yields a `Failure` and the others go on. With no `model`, the shipped
    MNIST model is used. `paths` may be a lazy iterator (e.g. lines from stdin): results stream out per batch.
    """
    import numpy as np
    import torch

    from digitkit import checkpoint as ckpt_io
    from digitkit.data.preprocess import open_image, to_input
    from digitkit.data.transforms import normalize
    from digitkit.device import pick_device
    from digitkit.training.image_task import augmented_logits

    if top_k < 1:
        raise DigitkitError("--top-k must be at least 1")
    if batch_size < 1:
        raise DigitkitError("--batch-size must be at least 1")
    ckpt = ckpt_io.load(_checkpoint_path(model))
    dev = pick_device(device)
    net = ckpt.build_model(dev).to(memory_format=torch.channels_last)
    classes = ckpt.classes
    k = min(top_k, len(classes))
    mean, std = tuple(ckpt.input["mean"]), tuple(ckpt.input["std"])
    tta = ckpt.input.get("tta", [])
    for chunk in _chunks((str(p) for p in paths), batch_size):
        arrays: list[Any] = []
        for path in chunk:
            try:
                arrays.append(to_input(open_image(path), ckpt.input, name=path))
            except InputError as exc:
                arrays.append(exc)
        good = [a for a in arrays if not isinstance(a, Exception)]
        probs = None
        if good:
            batch = torch.from_numpy(np.stack(good)).to(dev)
            with torch.inference_mode():
                x = normalize(batch, mean, std)
                probs = torch.softmax(augmented_logits(net, x, tta), dim=1).cpu()
        row = 0
        for path, item in zip(chunk, arrays):
            if isinstance(item, Exception):
                yield Failure(path, str(item))
                continue
            values, indices = probs[row].topk(k)
            row += 1
            top = [(classes[i], float(v)) for v, i in zip(values.tolist(), indices.tolist())]
            yield Prediction(path, top[0][0], top[0][1], top)


def transcribe(
    paths: Iterable[str | os.PathLike],
    *,
    model: str | os.PathLike | None = None,
    device: str = "cpu",
    segment_seconds: float = 20.0,
) -> Iterator[Any]:
    """Transcribe audio files (WAV, FLAC; any rate, mono or stereo) -> `Transcription` or `Failure` per file, in order.

    With no `model`, the shipped FSDD model is used. Long files are read in segments of about
    `segment_seconds`, cut at quiet points, so memory stays bounded however long the file is.
    """
    from digitkit import checkpoint as ckpt_io
    from digitkit.device import pick_device
    from digitkit.recognize import Recognizer

    if segment_seconds < 1:
        raise DigitkitError("--segment-seconds must be at least 1")
    recognizer = Recognizer(ckpt_io.load(_checkpoint_path(model, "speech")), pick_device(device), segment_seconds)
    for path in paths:
        try:
            yield recognizer.transcribe(path)
        except InputError as exc:
            yield Failure(str(path), str(exc))
