"""The tasks as plain functions a user can import and script: train, evaluate, predict, transcribe, export.

Nothing here prints: progress goes to the `reporter` handed in (see `digitkit.report`), results are returned.
Nothing here knows one kind of data from another either: `digitkit.tasks` picks the task for a dataset name or a
checkpoint, and that task does the work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator

from digitkit.config import TrainConfig
from digitkit.errors import CheckpointError, DigitkitError, Failure, TrainingInterrupted
from digitkit.report import Reporter
from digitkit.tasks import EvalResult
from digitkit.weights import model_file

__all__ = ["train", "evaluate", "predict", "transcribe", "export", "resolve_config", "TrainResult", "EvalResult", "Failure",
           "TrainingInterrupted"]


@dataclass
class TrainResult:
    checkpoint: Path
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    stop_reason: str


def resolve_config(dataset: str = "", *, resume: str | os.PathLike | None = None, device: str = "auto",
                   **options: Any) -> TrainConfig:
    """The effective training config: built-in defaults < preset (with its settings for the device) < `options`;
    or, with `resume`, the checkpoint's own config with the few changes a resumed run allows. This is what
    `--print-config` shows. A device named but not present here still gives its settings (a GPU run's batch size
    on a laptop); training on it is what needs it."""
    from digitkit import config

    if resume is not None:
        from digitkit import checkpoint as ckpt_io

        return config.resumed(ckpt_io.load(resume), options, dataset)
    from digitkit.device import device_type

    return config.resolve(dataset, options, device_type(device))


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
    tensorboard: str | os.PathLike | None = None,
    **options: Any,
) -> TrainResult:
    """Train a model on a dataset and write a checkpoint after every epoch (so Ctrl-C loses nothing).

    `options` are `TrainConfig` fields (epochs, batch_size, lr, model, preset, model_options, ...); `dataset`
    defaults to mnist. With `resume`, the checkpoint's own config and dataset are used (a `dataset` given must be
    the same), and only epochs, target_accuracy, patience, precision and compile may change.
    `epoch_callback` sees each epoch's history row (and may raise to stop, as tuning's pruning does);
    `test=False` skips the final test-set pass. `tensorboard` is a folder for TensorBoard scalars (the tensorboard
    extra). Under torchrun every rank calls this; rank 0 writes and reports.
    """
    from digitkit import checkpoint as ckpt_io
    from digitkit import config
    from digitkit.device import pick_device
    from digitkit.training import distributed

    reporter = reporter or Reporter()
    dev = distributed.local_device(pick_device(device))
    previous = None
    if resume is not None:
        previous = ckpt_io.load(resume)
        if previous.train_state is None:
            raise CheckpointError(f"{resume}: holds no training state to resume from (it was saved for deployment only)")
        problem = ckpt_io.train_state_problem(previous.train_state)
        if problem:
            raise CheckpointError(f"{resume}: training state is damaged ({problem})")
        cfg = config.resumed(previous, options, dataset)
        out = Path(out) if out is not None else Path(resume)
        ts = previous.train_state
        if ts.get("status") == "complete" and not (int(ts["epoch"]) < cfg.epochs and ts.get("stop_reason", "").startswith("finished")):
            reporter.info(f"{resume}: training already finished ({ts.get('stop_reason', 'complete')}); nothing to do")
            return TrainResult(Path(resume), previous.metrics, previous.history, ts.get("stop_reason", ""))
    else:
        cfg = config.resolve(dataset or "mnist", options, dev.type)
        out = Path(out) if out is not None else Path("runs") / f"{cfg.dataset}-{cfg.model}.safetensors"

    world = distributed.join(dev)
    if not world.is_main:
        reporter = Reporter()
    callbacks: list[Any] = []
    try:
        if epoch_callback is not None:
            from digitkit.training.callbacks import EachEpoch

            callbacks.append(EachEpoch(epoch_callback))
        if tensorboard is not None and world.is_main:
            from digitkit.training.callbacks import TensorBoard

            callbacks.append(TensorBoard(tensorboard))
        result = _run(cfg, out, previous, resume, dev, world, data_dir, allow_download, reporter, callbacks, test)
    except BaseException:
        distributed.leave(world, finished=False)
        raise
    finally:
        for callback in callbacks:
            callback.close()
    distributed.leave(world)
    return result


def _run(cfg: TrainConfig, out: Path, previous: Any, resume: Any, dev: Any, world: Any, data_dir: Any,
         allow_download: bool, reporter: Reporter, callbacks: list[Any], test: bool) -> TrainResult:
    from digitkit.data.paths import resolve_data_dir
    from digitkit.training.run import train_to

    run, metrics = train_to(out, cfg, dev, world, reporter, resolve_data_dir(data_dir), allow_download, previous, resume,
                            callbacks, test)
    return TrainResult(out, metrics, run.state.history, run.state.stop_reason)


def _model_for(model: str | os.PathLike | None, kind: str) -> tuple[Path, Any, Any]:
    """(file, checkpoint, task) of the model a `kind` command runs: a file, a shipped model's name, or None for the
    kind's default; a model of another kind is refused in one line."""
    from digitkit import checkpoint as ckpt_io
    from digitkit import tasks

    path = model_file(model, kind)
    ckpt = ckpt_io.load(path)
    return path, ckpt, tasks.for_checkpoint(ckpt, kind)


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
    dataset: str | None = None,
) -> EvalResult:
    """Test-set accuracy, loss, per-class precision/recall/F1 and confusion matrix of a checkpoint (speech: also
    the word error rate on connected strings). With no checkpoint, the shipped MNIST model on its own dataset;
    with `dataset`, the test split of another dataset of the same kind and classes."""
    from digitkit import checkpoint as ckpt_io
    from digitkit import tasks
    from digitkit.data.paths import resolve_data_dir
    from digitkit.device import pick_device

    reporter = reporter or Reporter()
    path = model_file(checkpoint)
    ckpt = ckpt_io.load(path)
    if batch_size < 1:
        raise DigitkitError("--batch-size must be at least 1")
    task = tasks.for_checkpoint(ckpt)
    if dataset is not None and task.dataset_name(dataset) is None:
        raise DigitkitError(f"{dataset!r} is not a dataset for this {ckpt.dataset} {task.kind} model; it can be "
                            f"evaluated on {', '.join(task.evaluable_on(ckpt))}")
    model = ckpt.build_model(pick_device(device))
    result = task.evaluate(ckpt, path, model, resolve_data_dir(data_dir), batch_size, allow_download, reporter,
                           dataset)
    _plots(result, ckpt, path, plot, curves, reporter)
    return result


def _plots(result: EvalResult, ckpt: Any, path: Path, plot: Any, curves: Any, reporter: Reporter) -> None:
    if plot is not None:
        from digitkit.plots import confusion_png

        written = confusion_png(result.confusion, result.classes, Path(plot),
                                f"{result.dataset} test: accuracy {result.accuracy:.2%}")
        reporter.info(f"wrote {written}")
    if curves is not None:
        from digitkit.plots import curves_png

        written = curves_png(ckpt.history, Path(curves), f"{path.name}: {ckpt.model_name} on {result.dataset}")
        reporter.info(f"wrote {written}")


def predict(
    sources: Iterable[Any],
    *,
    model: str | os.PathLike | None = None,
    top_k: int = 1,
    batch_size: int = 256,
    device: str = "cpu",
    min_confidence: float | None = None,
    save_input: str | os.PathLike | None = None,
) -> Iterator[Any]:
    """Read pictures -> a `reader.Prediction` or a `Failure` each, in input order; one loaded model, batched forward
    passes of at most `batch_size`. A source is an image file's path, an image file's bytes (`bytes`, or
    `reader.Encoded(data, name)` to name it), a PIL image, a numpy array or a torch tensor ([H, W], [H, W, C] or
    [C, H, W]; uint8, or floats in [0, 1]); one that cannot be used yields a `Failure` and the
    others go on. `sources` may be a lazy iterator (e.g. lines from stdin): results stream out per batch.

    With no `model`, the shipped MNIST model. A digit model reads one digit or a whole number (`label` "4071", each
    character in `characters`); a picture with no digit the model is sure of (a letter, a symbol, a scribble, blank
    paper) has label None. `min_confidence` is the least calibrated probability a character needs (default: the
    checkpoint's own, measured on its validation digits, for models trained to reject; else 0). `save_input` is a folder to write each model
    input (the 28x28 image the network saw) to, as PNG."""

    if top_k < 1:
        raise DigitkitError("--top-k must be at least 1")
    if batch_size < 1:
        raise DigitkitError("--batch-size must be at least 1")
    if min_confidence is not None:
        min_confidence = _min_confidence(min_confidence)
    _, ckpt, task = _model_for(model, "image")
    return task.classify(ckpt, sources, device, top_k, batch_size, min_confidence, save_input)


def _min_confidence(value: float | None) -> float:
    from digitkit.recognize import DEFAULT_MIN_CONFIDENCE

    if value is None:
        return DEFAULT_MIN_CONFIDENCE
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise DigitkitError("--min-confidence must be between 0 and 1")
    return value


def transcribe(
    paths: Iterable[str | os.PathLike],
    *,
    model: str | os.PathLike | None = None,
    device: str = "cpu",
    segment_seconds: float = 20.0,
    min_confidence: float | None = None,
    plot: str | os.PathLike | None = None,
) -> Iterator[Any]:
    """Transcribe audio files (WAV, FLAC; 1-768 kHz, mono or stereo) -> `Transcription` or `Failure` per file, in
    order; with no `model`, the shipped digit model. Long files are read in segments of about `segment_seconds`, cut
    at quiet points, so memory stays bounded however long the file is. A clip with other speech, no speech, or a
    word below `min_confidence` (default `recognize.DEFAULT_MIN_CONFIDENCE`) has transcript None. `plot` is a
    folder to draw each clip's waveform with its words and their times into (NAME.png)."""
    from digitkit.device import pick_device
    from digitkit.errors import InputError
    from digitkit.recognize import Recognizer

    if not 1 <= segment_seconds < 86400:
        raise DigitkitError("--segment-seconds must be at least 1 and finite")
    min_confidence = _min_confidence(min_confidence)
    _, ckpt, _ = _model_for(model, "speech")
    recognizer = Recognizer(ckpt, pick_device(device), segment_seconds, min_confidence)
    if plot is not None:
        from digitkit.atomic import folder_problem

        problem = folder_problem(Path(plot))
        if problem:
            raise DigitkitError(f"--plot {plot}: {problem}")
    drawn: set[str] = set()

    def draw(result: Any) -> None:
        from digitkit.data.audio import read_audio
        from digitkit.plots import transcript_png

        name, k = Path(result.path).stem or "clip", 1
        while (f"{name}-{k}" if k > 1 else name) in drawn:  # two clips of one name from different folders
            k += 1
        name = f"{name}-{k}" if k > 1 else name
        drawn.add(name)
        text = result.transcript if result.transcript is not None else "not recognised"
        transcript_png(read_audio(result.path, recognizer.sample_rate).numpy(), recognizer.sample_rate, result.words,
                       Path(plot) / f"{name}.png", f"{Path(result.path).name}: {text}")

    def results() -> Iterator[Any]:
        for path in paths:
            try:
                result = recognizer.transcribe(path)
                if plot is not None:
                    draw(result)
                yield result
            except InputError as exc:
                yield Failure(str(path), str(exc))

    return results()


def transcribe_stream(
    stream: BinaryIO,
    *,
    model: str | os.PathLike | None = None,
    device: str = "cpu",
    min_confidence: float | None = None,
    pause_seconds: float = 0.35,
) -> Iterator[Any]:
    """Transcribe a live WAV stream (header, then PCM, as `arecord -t wav` writes it) -> one `stream.Heard` per
    spoken string, each as soon as `pause_seconds` of quiet follows it; memory stays bounded however long it runs."""
    from digitkit.device import pick_device
    from digitkit.recognize import Recognizer
    from digitkit.stream import transcribe_stream as run

    min_confidence = _min_confidence(min_confidence)
    if not 0.05 <= pause_seconds <= 10:
        raise DigitkitError("--pause must be between 0.05 and 10 seconds")
    _, ckpt, _ = _model_for(model, "speech")
    return run(Recognizer(ckpt, pick_device(device), min_confidence=min_confidence), stream, pause_seconds)


def export(
    checkpoint: str | os.PathLike | None = None,
    *,
    format: str = "onnx",
    out: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    check: bool = True,
    limit: int | None = None,
    allow_download: bool = True,
    reporter: Reporter | None = None,
) -> Any:
    """Write a checkpoint's model (a file, a shipped model's name, or None for the shipped MNIST model) as ONNX or
    TorchScript, with its metadata inside -> `export.ExportResult`. Unless `check` is False, the file is first run
    on the test split of the model's dataset (the first `limit` inputs, default all) and written only if every
    decision agrees with PyTorch's. `out` defaults to the checkpoint's name with the format's suffix, in the current
    folder."""
    from digitkit import checkpoint as ckpt_io
    from digitkit import tasks
    from digitkit.data.paths import resolve_data_dir
    from digitkit.export import FORMATS, export as run

    reporter = reporter or Reporter()
    if format not in FORMATS:
        raise DigitkitError(f"unknown export format {format!r}; choose one of: {', '.join(FORMATS)}")
    if limit is not None and limit < 1:
        raise DigitkitError("--limit must be at least 1")
    path = model_file(checkpoint)
    ckpt = ckpt_io.load(path)
    if ckpt.exported is not None:
        raise DigitkitError(f"{path} is already an exported model; export from its .safetensors checkpoint")
    target = Path(out) if out is not None else Path.cwd() / (path.stem + FORMATS[format])
    if target.is_dir():
        raise DigitkitError(f"--out {target} is a folder; give a file name (e.g. {target / (path.stem + FORMATS[format])})")
    from digitkit.atomic import folder_problem

    problem = folder_problem(target.parent)
    if problem:
        raise DigitkitError(f"cannot write {target}: {problem}")
    batches, described = None, ""
    if check:
        batches, described = tasks.for_checkpoint(ckpt).export_check(ckpt, resolve_data_dir(data_dir), allow_download,
                                                                     limit)
    else:
        reporter.warn("not checked against PyTorch (--no-check): the file is written as exported")
    return run(ckpt, str(path), format, target, batches, described, reporter)
