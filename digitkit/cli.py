"""The `digitkit` command: options in, one call into `digitkit.api`, results out.

Data goes to stdout, progress and errors to stderr. Exit codes: 0 ok, 1 some inputs failed,
2 bad usage or data, 130 interrupted. No torch import at module top, so `--help` is instant.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from digitkit import __version__
from digitkit.errors import DigitkitError

# Spelled out rather than read from the task registry, which would import the datasets' modules and slow `--help`;
# tests/test_tasks.py checks it against the registry.
DATASET_NAMES = "mnist, fashion-mnist, cifar10, fsdd, speechcommands or digits"

app = typer.Typer(
    name="digitkit",
    help="Train, evaluate and run small image classifiers (MNIST, Fashion-MNIST, CIFAR-10) and speech recognizers (spoken digits and commands), fast on a CPU.",
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"digitkit: error: {message}\n")
    raise typer.Exit(code)


class _Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, handled as Ctrl-C is (training saves its last epoch and says how to resume)."""

    signal_number = 0


def _stop_on(signum: int, frame: Any) -> None:
    _Stopped.signal_number = signum
    raise _Stopped()


def _run(fn: Callable[[], Any]) -> Any:
    """Run a task, turning user-caused errors, Ctrl-C, SIGTERM and SIGHUP into one line and an exit code (128 + the
    signal's number for a signal, as shells report it)."""
    import signal

    for name in ("SIGTERM", "SIGHUP"):  # SIGHUP: a closed terminal; neither exists on every platform
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _stop_on)
    try:
        return fn()
    except DigitkitError as exc:
        stopped = _Stopped.signal_number
        _fail(str(exc), 128 + stopped if stopped and exc.exit_code == 130 else exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 128 + (_Stopped.signal_number or signal.SIGINT))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"digitkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Train, evaluate and run small image classifiers, fast on a CPU."""


def _parse_value(text: str) -> Any:
    if "," in text:
        return [_parse_value(part) for part in text.split(",") if part]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _model_options(pairs: list[str]) -> dict[str, Any]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise DigitkitError(f"--model-option takes KEY=VALUE (e.g. filters=32,64,128), not {pair!r}")
        options[key.strip().replace("-", "_")] = _parse_value(value.strip())
    return options


def _launch_torchrun(nproc: int, device: str) -> None:
    """`--nproc N`: run this same command under torchrun with N local processes, and exit with its status."""
    import subprocess

    if nproc < 1:
        _fail("--nproc must be at least 1", 2)
    if "LOCAL_RANK" in os.environ:
        _fail("--nproc starts torchrun itself; under torchrun leave it out", 2)
    if nproc > 1 and device != "cpu":  # one GPU per process: say so before torchrun starts any of them
        from digitkit.device import pick_device

        try:
            dev = pick_device(device)
        except DigitkitError as exc:
            _fail(str(exc), 2)
        if dev.type == "cuda":
            import torch

            gpus = torch.cuda.device_count()
            if nproc > gpus:
                _fail(f"--nproc {nproc} on CUDA needs {nproc} GPUs, and this machine has {gpus}: use --nproc {gpus}, or --device cpu", 2)
    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            args.append(arg)
    if nproc == 1:
        return
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "digitkit", *args]
    try:
        code = subprocess.call(command)
    except KeyboardInterrupt:
        code = 130
    raise typer.Exit(code)


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


_CLI_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list[str]": str}  # a list is given comma-separated


def _train_parameters() -> list[inspect.Parameter]:
    """`digitkit train`'s parameters: DATASET, one option per `TrainConfig` option (its help and default from the
    declaration there), then the options of where and how a run happens, which are no part of its config."""
    from digitkit import config

    def param(name: str, annotation: Any, default: Any) -> inspect.Parameter:
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)

    params = [param("dataset", Optional[str], typer.Argument(None, metavar="DATASET", help=f"{DATASET_NAMES} (not needed with --resume)."))]
    for f in config.cli_options():
        kind = _CLI_TYPES[f.type.split("|")[0].strip()]
        names = [config.flag(f.name) + (f"/--no-{f.name.replace('_', '-')}" if kind is bool else "")]
        names += [f.metadata["short"]] if f.metadata["short"] else []
        help_text = f"{f.metadata['help']} (default: {config.default_text(f.name)})"
        params.append(param(f.name, Optional[kind], typer.Option(None, *names, help=help_text, show_default=False)))
    return params + [
        param("model_option", list[str], typer.Option([], "--model-option", "-o", metavar="KEY=VALUE", help="Model size, KEY=VALUE, repeatable: filters=32,64 dense=256 dropout_conv=0.25 stem=32 widths=64,128,256 blocks=1,1,1.")),
        param("device", Device, typer.Option(Device.auto, "--device", help="Where to train.")),
        param("out", Optional[Path], typer.Option(None, "--out", help="Checkpoint path. (default: runs/DATASET-MODEL.safetensors)")),
        param("resume", Optional[Path], typer.Option(None, "--resume", help="Continue a run from its checkpoint (optimizer, schedule and early-stopping state included).")),
        param("data_dir", Optional[Path], typer.Option(None, "--data-dir", help="Dataset folder. (default: $DIGITKIT_DATA, else the user cache dir)")),
        param("download", bool, typer.Option(True, "--download/--no-download", help="Fetch missing dataset files (checksummed).")),
        param("config", Optional[Path], typer.Option(None, "--config", "-c", help="TOML file of train options (keys as the long option names, [model_options] table); flags override it.")),
        param("config_from", Optional[Path], typer.Option(None, "--config-from", help="Repeat the run a checkpoint was trained with (its stored config); flags override it.")),
        param("print_config", bool, typer.Option(False, "--print-config", help="Print the effective config as TOML on stdout and exit without training.")),
        param("tensorboard", Optional[Path], typer.Option(None, "--tensorboard", help="Also write TensorBoard scalars (per-epoch metrics, per-batch loss) to this folder (the tensorboard extra). A CSV of the epochs is always written beside the checkpoint.")),
        param("nproc", Optional[int], typer.Option(None, "--nproc", help="Train with N processes on this machine (launches torchrun; --batch-size stays the total batch).")),
        param("as_json", bool, typer.Option(False, "--json", help="Print the final metrics as JSON on stdout.")),
        param("quiet", bool, typer.Option(False, "--quiet", "-q", help="Only warnings and errors on stderr.")),
    ]


def train(**given: Any) -> None:
    """Train a model; writes a checkpoint after every epoch and prints its path (or --json metrics) on stdout."""
    from digitkit.config import cli_options

    dataset, model_option, device, out, resume, data_dir, download, config, config_from, print_config, tensorboard, nproc, as_json, quiet = (
        given.pop(k) for k in ("dataset", "model_option", "device", "out", "resume", "data_dir", "download", "config",
                               "config_from", "print_config", "tensorboard", "nproc", "as_json", "quiet"))
    flags = {f.name: given[f.name] for f in cli_options()}
    if flags["words"] is not None:
        flags["words"] = [w.strip() for w in flags["words"].split(",") if w.strip()] or None

    def gather() -> tuple[str, dict[str, Any]]:
        return _gather_options(dataset, flags, model_option, config, config_from, resume)

    if print_config:
        def show() -> str:
            from digitkit import api
            from digitkit.configfile import to_toml

            name, options = gather()
            return to_toml(api.resolve_config(name, resume=resume, device=device.value, **options))

        typer.echo(_run(show), nl=False)
        return
    if nproc is not None:
        _launch_torchrun(nproc, device.value)

    def task():
        from digitkit import api
        from digitkit.report import ConsoleReporter

        name, options = gather()
        reporter = ConsoleReporter(quiet=quiet)
        try:
            return api.train(name, out=out, data_dir=data_dir, resume=resume, device=device.value,
                             reporter=reporter, allow_download=download, tensorboard=tensorboard, **options)
        finally:
            reporter.close()

    result = _run(task)
    if os.environ.get("RANK", "0") == "0":  # of several torchrun processes, rank 0 reports
        _print_trained(result, as_json)


def _gather_options(dataset: str | None, flags: dict[str, Any], model_option: list[str], config: Path | None,
                    config_from: Path | None, resume: Path | None) -> tuple[str, dict[str, Any]]:
    """(DATASET, train options): a config file's or checkpoint's options, overridden by the flags given."""
    from digitkit.configfile import config_from_checkpoint, read_config

    if config is not None and config_from is not None:
        raise DigitkitError("give --config or --config-from, not both")
    base = read_config(config) if config is not None else config_from_checkpoint(config_from) if config_from is not None else {}
    name = dataset or base.pop("dataset", None)
    base.pop("dataset", None)
    options = {**base, **{k: v for k, v in flags.items() if v is not None}}
    if model_option:
        options["model_options"] = {**(base.get("model_options") or {}), **_model_options(model_option)}
    if name is None and resume is None:
        raise DigitkitError(f"give a DATASET ({DATASET_NAMES}), a --config that names one, or --resume CHECKPOINT")
    return name or "", options


def _print_trained(result: Any, as_json: bool) -> None:
    m = result.metrics
    if as_json:
        _print_json({"checkpoint": str(result.checkpoint), "stop_reason": result.stop_reason, **m})
    else:
        sys.stderr.write(
            f"test accuracy {m['test_accuracy']:.4f} (loss {m['test_loss']:.4f}) after {m['epochs_run']} epochs, "
            f"{m['train_seconds']:.0f} s of training\n"
        )
        if "test_calibration_error" in m:
            sys.stderr.write(f"calibration error of the test confidences {m['test_calibration_error']:.2%}\n")
        if "test_sequence_wer" in m:
            recorded = (f"; recorded strings of held-out speakers: WER {m['test_recorded_wer']:.2%} "
                        f"({m['test_recorded']})") if "test_recorded_wer" in m else ""
            sys.stderr.write(f"word error rate on {m['test_sequences']} joined test strings {m['test_sequence_wer']:.2%}"
                             f"{recorded}\n")
        typer.echo(str(result.checkpoint))



train.__signature__ = inspect.Signature(_train_parameters())  # type: ignore[attr-defined]
app.command()(train)

@app.command()
def evaluate(
    checkpoint: Optional[Path] = typer.Argument(None, metavar="CHECKPOINT", help="A .safetensors checkpoint, image or speech. (default: the shipped MNIST model)"),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Test on another dataset with the same classes, e.g. a digits speech model on fsdd. (default: the checkpoint's)"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Dataset folder. (default: $DIGITKIT_DATA, else the user cache dir)"),
    device: Device = typer.Option(Device.auto, "--device"),
    batch_size: int = typer.Option(1000, "--batch-size", "-b"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write the confusion matrix as a PNG."),
    curves: Optional[Path] = typer.Option(None, "--curves", help="Write the checkpoint's training curves as a PNG."),
    download: bool = typer.Option(True, "--download/--no-download", help="Fetch missing dataset files (checksummed)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object on stdout instead of tables."),
) -> None:
    """Test-set accuracy, loss, per-class precision/recall/F1 and the confusion matrix of a checkpoint."""

    def task():
        from digitkit import api
        from digitkit.report import ConsoleReporter

        return api.evaluate(checkpoint, data_dir=data_dir, device=device.value, batch_size=batch_size, plot=plot,
                            curves=curves, allow_download=download, reporter=ConsoleReporter(), dataset=dataset)

    result = _run(task)
    if as_json:
        data = result.to_dict()
        data.pop("history")
        _print_json(data)
        return
    from digitkit.report import print_evaluation

    print_evaluation(result)


# `predict -` with a picture's bytes on stdin (`curl URL | digitkit predict -`) reads at most this much
MAX_STDIN_IMAGE_BYTES = 64 << 20


# how the files digitkit reads begin, where their first bytes can pass for text (a WAV of quiet samples, a GIF)
_SIGNATURES = (b"RIFF", b"fLaC", b"OggS", b"ID3", b"FORM", b"GIF8", b"\x89PNG", b"II*\x00", b"MM\x00*")


def _stdin_is_binary() -> bool:
    """Whether stdin holds a file's bytes rather than lines of paths: its first 4 KB are not UTF-8 (a PNG, a JPEG,
    any sound), or begin as an image or audio file does. A NUL byte alone is still a listing (a broken path)."""
    import codecs

    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None or not hasattr(buffer, "peek"):  # stdin closed, or replaced by a text-only stream
        return False
    head = buffer.peek(4096)[:4096]
    if head.startswith(_SIGNATURES) or head[4:8] == b"ftyp":  # ftyp: MP4/M4A
        return True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return True
    return False


def _expand_stdin(files: list[str], picture: bool = False) -> Any:
    """`-` stands for the paths read from stdin, one per line, streamed as they come. Stdin that holds a file's
    bytes instead is, with `picture` (`predict`), that one picture; else an error that says what to do."""
    for item in files:
        if item != "-":
            yield item
        elif _stdin_is_binary():
            if not picture:
                raise DigitkitError("stdin holds a file's bytes, not paths of files: `digitkit transcribe --stream` "
                                    "reads a WAV stream from stdin")
            from digitkit.reader import Encoded

            data = sys.stdin.buffer.read(MAX_STDIN_IMAGE_BYTES + 1)
            if len(data) > MAX_STDIN_IMAGE_BYTES:
                raise DigitkitError(f"stdin holds more than {MAX_STDIN_IMAGE_BYTES >> 20} MB: not one picture")
            yield Encoded(data, "-")
        else:
            for line in sys.stdin:
                line = line.rstrip("\r\n")
                if line.strip():
                    yield line


def _stream(results: Callable[[], Any], line: Callable[[Any], str]) -> None:
    """Print one line per input as results arrive; a failed input gets one error line on stderr and the rest
    go on; exit 1 if any failed. A closed pipe (`... | head -1`) ends quietly. Each line is flushed as it is
    written: stdout into a pipe is block-buffered, and a reader downstream (`transcribe --stream | ...`) would get
    each line only when the next one came (2-3 s later for spoken strings), or at the end."""

    def task() -> int:
        from digitkit.errors import Failure

        failed = 0
        for item in results():
            if isinstance(item, Failure):
                failed += 1
                sys.stderr.write(f"digitkit: error: {item.error}\n")
                continue
            if getattr(item, "warning", ""):
                sys.stderr.write(f"digitkit: warning: {item.path}: {item.warning}\n")
            sys.stdout.write(line(item) + "\n")
            sys.stdout.flush()
        return failed

    try:
        failed = _run(task)
    except BrokenPipeError:
        sys.stderr.close()
        raise typer.Exit(0)
    if failed:
        raise typer.Exit(1)


@app.command()
def predict(
    files: list[str] = typer.Argument(..., metavar="FILE", help="Image files; - reads paths from stdin, one per line, or the one picture piped to it."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Checkpoint to use. (default: the shipped MNIST model)"),
    top_k: int = typer.Option(1, "--top-k", "-k", help="Also print the K most likely labels."),
    batch_size: int = typer.Option(256, "--batch-size", "-b", help="Images per forward pass."),
    device: Device = typer.Option(Device.cpu, "--device"),
    min_confidence: Optional[float] = typer.Option(None, "--min-confidence", help="Report a picture as not recognised (?) when a character's calibrated confidence is below this. (default: the model's own, measured at training to keep 99.5 % of its validation digits; 0 for models not trained to reject)"),
    save_input: Optional[Path] = typer.Option(None, "--save-input", help="Write the image the model saw for each file (28x28 for digits; NAME-K.png for the K-th digit of a number) into this folder."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line, with each character's box and confidence."),
) -> None:
    """Read images: one line per file, PATH<TAB>LABEL<TAB>CONFIDENCE (more label/confidence pairs with --top-k).
    A digit model reads a single digit or a whole number ("4071"); the label is ? (JSON: null) for a picture with
    no digit it is sure of: a letter, a symbol, a scribble, blank paper."""

    def results():
        from digitkit import api

        return api.predict(_expand_stdin(files, picture=True), model=model, top_k=top_k, batch_size=batch_size, device=device.value,
                           min_confidence=min_confidence, save_input=save_input)

    def line(item) -> str:
        from digitkit.reader import NOT_RECOGNISED

        if as_json:
            return json.dumps(item.to_dict())
        if item.label is None or len(item.characters) > 1:
            return f"{item.path}\t{item.label if item.label is not None else NOT_RECOGNISED}\t{item.confidence:.4f}"
        return "\t".join([item.path] + [f"{label}\t{conf:.4f}" for label, conf in item.top])

    _stream(results, line)


@app.command()
def transcribe(
    files: Optional[list[str]] = typer.Argument(None, metavar="FILE", help="Audio files (WAV, FLAC; 1-768 kHz, mono or stereo); - reads paths from stdin."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Speech checkpoint, or a shipped model: fsdd (FSDD's voices, isolated digits) or digits (voices in the wild, fluent strings, rejects other speech). (default: fsdd)"),
    device: Device = typer.Option(Device.cpu, "--device"),
    segment_seconds: float = typer.Option(20.0, "--segment-seconds", help="Long files are decoded in segments of about this length."),
    min_confidence: Optional[float] = typer.Option(None, "--min-confidence", help="Report a clip as not recognised (?) when a word's confidence is below this. (default: 0.4)"),
    stream: bool = typer.Option(False, "--stream", help="Read one live WAV stream on stdin (e.g. from `arecord -f S16_LE -r 16000 -t wav`) and print START<TAB>END<TAB>TRANSCRIPT<TAB>CONFIDENCE per spoken string as soon as the pause after it ends."),
    pause: float = typer.Option(0.35, "--pause", help="--stream: seconds of quiet that end a spoken string."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Draw each clip's waveform with its words and their times into this folder (NAME.png)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line, with per-word times and confidences."),
) -> None:
    """Speech to text: one line per file, PATH<TAB>TRANSCRIPT<TAB>CONFIDENCE; the transcript is ? (JSON: null) when
    the clip holds no digits the model is sure of: other speech, noise, or a word below --min-confidence."""
    if stream and files:
        _fail("--stream reads stdin; give no FILES with it", 2)
    if not stream and not files:
        _fail("give audio FILES (or - to read their paths from stdin), or --stream to read live audio on stdin", 2)

    def results():
        from digitkit import api

        if stream:
            return api.transcribe_stream(sys.stdin.buffer, model=model, device=device.value,
                                         min_confidence=min_confidence, pause_seconds=pause)
        return api.transcribe(_expand_stdin(files), model=model, device=device.value, segment_seconds=segment_seconds,
                              min_confidence=min_confidence, plot=plot)

    def line(item) -> str:
        from digitkit.recognize import NOT_RECOGNISED

        if as_json:
            return json.dumps(item.to_dict())
        transcript = item.transcription.transcript if stream else item.transcript
        text = transcript if transcript is not None else NOT_RECOGNISED
        head = f"{item.start:.2f}\t{item.end:.2f}" if stream else item.path
        return f"{head}\t{text}\t{(item.transcription if stream else item).confidence:.4f}"

    _stream(results, line)


@app.command()
def tune(
    dataset: str = typer.Argument(..., metavar="DATASET", help=f"{DATASET_NAMES}."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model family to search: cnn, resnet, lstm or gru. (default: cnn for images, lstm for speech)"),
    trials: int = typer.Option(20, "--trials", "-n", help="Finished trials the study should hold, counting other processes' and earlier runs'."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Start no new trial after this many seconds."),
    epochs: int = typer.Option(3, "--epochs", "-e", help="Epochs per trial."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Train each trial on N samples only; trials are scored on the full validation split."),
    seed: int = typer.Option(0, "--seed", help="Seeds every trial's training and the sampler of a new study."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory: study.db, best.toml, trial checkpoints. (default: runs/tune-DATASET)"),
    storage: Optional[str] = typer.Option(None, "--storage", help="Optuna storage URL, shared by every process of the study: sqlite:///study.db, postgresql://user@host/db, or journal:PATH. (default: sqlite in --out)"),
    study_name: Optional[str] = typer.Option(None, "--study-name", help="(default: DATASET-MODEL)"),
    sampler: str = typer.Option("tpe", "--sampler", help="tpe, random or grid."),
    pruner: str = typer.Option("median", "--pruner", help="median, hyperband or none: stop trials whose val accuracy lags."),
    space: Optional[Path] = typer.Option(None, "--space", help="TOML search space; its tables replace or add to the model's default space."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML train options every trial starts from."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write optimization-history.png and param-importances.png here."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Dataset folder. (default: $DIGITKIT_DATA, else the user cache dir)"),
    device: Device = typer.Option(Device.auto, "--device"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object on stdout: best trial and all trials."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors on stderr."),
) -> None:
    """Search hyperparameters with Optuna (TPE, pruning); writes the best config as TOML for `train --config`."""

    def task():
        from digitkit.configfile import read_config
        from digitkit.report import ConsoleReporter
        from digitkit.tuning import tune as run_tune

        base = read_config(config) if config is not None else {}
        base.pop("dataset", None)
        return run_tune(dataset, model=model, trials=trials, timeout=timeout, epochs=epochs, limit=limit, seed=seed,
                        out=out, storage=storage, study_name=study_name, sampler=sampler, pruner=pruner, space=space,
                        plot=plot, data_dir=data_dir, device=device.value, base=base, reporter=ConsoleReporter(quiet=quiet))

    result = _run(task)
    if as_json:
        _print_json(result.to_dict())
        return
    from digitkit.report import print_trials

    print_trials(result)


class Format(str, Enum):
    onnx = "onnx"
    torchscript = "torchscript"


@app.command()
def export(
    checkpoint: Optional[Path] = typer.Argument(None, metavar="CHECKPOINT", help="A .safetensors checkpoint, or a shipped model's name (mnist, fsdd, digits). (default: the shipped MNIST model)"),
    format: Format = typer.Option(Format.onnx, "--format", "-f", help="onnx (onnxruntime, browsers, phones, C++; needs the onnx extra) or torchscript (libtorch)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write it. (default: the checkpoint's name with .onnx or .pt, in this folder)"),
    check: bool = typer.Option(True, "--check/--no-check", help="Run the exported model on the test split of the model's dataset and write it only if every decision agrees with PyTorch."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Check on the first N test inputs only. (default: all)"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Dataset folder. (default: $DIGITKIT_DATA, else the user cache dir)"),
    download: bool = typer.Option(True, "--download/--no-download", help="Fetch missing dataset files (checksummed)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object on stdout: the file, the check's figures."),
) -> None:
    """Export a model to ONNX or TorchScript with its metadata (classes, input normalisation or mel settings,
    calibration) inside; prints the file's path. `predict` and `transcribe` take the file as --model."""

    def task():
        from digitkit import api
        from digitkit.report import ConsoleReporter

        return api.export(checkpoint, format=format.value, out=out, data_dir=data_dir, check=check, limit=limit,
                          allow_download=download, reporter=ConsoleReporter())

    result = _run(task)
    if as_json:
        _print_json(result.to_dict())
        return
    typer.echo(result.path)


@app.command()
def serve(
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Image checkpoint or shipped model name. (default: the shipped MNIST model)"),
    speech_model: Optional[Path] = typer.Option(None, "--speech-model", help="Speech checkpoint or shipped model name (fsdd, digits). (default: fsdd)"),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; 0.0.0.0 makes the page reachable from other machines."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    device: Device = typer.Option(Device.cpu, "--device"),
) -> None:
    """A local web page: draw a digit and see what the network thinks, upload a photo or a clip, speak into the
    microphone; with the JSON API behind it (POST /api/predict, POST /api/transcribe, GET /api/models)."""

    def task():
        from digitkit.report import ConsoleReporter
        from digitkit.serve import serve as run

        run(model, speech_model, host=host, port=port, device=device.value, reporter=ConsoleReporter())

    _run(task)


def _table(rows: list[list[str]]) -> None:
    """Aligned columns on stdout, the first row a header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        sys.stdout.write("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n")


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.0f} kB"


def _figures(metrics: dict[str, Any]) -> str:
    parts = []
    for key, label in (("test_accuracy", "accuracy"), ("test_sequence_wer", "WER joined"), ("test_recorded_wer", "WER recorded")):
        if isinstance(metrics.get(key), (int, float)):
            parts.append(f"{label} {metrics[key]:.2%}")
    return ", ".join(parts) or "-"


@app.command()
def info(
    checkpoint: Path = typer.Argument(..., metavar="CHECKPOINT", help="A .safetensors checkpoint, a model `digitkit export` wrote (.onnx, .pt), or a shipped model's name (mnist, fsdd, digits)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
) -> None:
    """What a model file holds: architecture, size, dataset, classes, test figures, training config, versions."""
    from digitkit.catalog import info as describe

    found = _run(lambda: describe(checkpoint))
    if as_json:
        _print_json(found.to_dict())
        return
    m = found.metrics
    lines = [
        ("file", f"{found.path} ({found.file_format}, {_mb(found.size_bytes)})"),
        ("model", f"{found.model} {json.dumps(found.model_config)}"),
        ("parameters", f"{found.parameters:,}" if found.parameters is not None else "-"),
        ("dataset", f"{found.dataset} ({found.kind}), {len(found.classes)} classes: {', '.join(found.classes)}"),
        ("input", json.dumps(found.input)),
        ("test", _figures(m) + (f" on {m['test_samples']:,} samples" if "test_samples" in m else "")),
        ("trained", (f"{found.epochs} epochs, {m['train_seconds']:.0f} s" if "train_seconds" in m else f"{found.epochs} epochs")
                    + (f", {found.created}" if found.created else "") + (", resumable" if found.resumable else "")),
        ("config", json.dumps(found.train_config) if found.train_config else "-"),
        ("versions", ", ".join(f"{k} {v}" for k, v in found.versions.items()) or "-"),
    ]
    for key, value in lines:
        sys.stdout.write(f"{key:<11}{value}\n")


@app.command()
def models(
    runs: Path = typer.Option(Path("runs"), "--runs", help="Folder of your checkpoints, searched recursively."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """The shipped models (use them by name: --model digits) and your checkpoints under runs/, with their test figures."""
    from digitkit.catalog import models as listing

    entries = _run(lambda: listing(runs))
    if as_json:
        for e in entries:
            _print_json(e.to_dict())
        return
    rows = [["NAME", "MODEL", "DATASET", "TEST", "SIZE", "CREATED"]]
    for e in entries:
        rows.append([e.name, e.model or "?", e.dataset or "?", e.problem or _figures(e.metrics), _mb(e.size_bytes), e.created[:10]])
    _table(rows)
    if not any(not e.shipped for e in entries):
        sys.stderr.write(f"no checkpoints under {runs}/ yet: `digitkit train mnist` writes one there\n")


@app.command()
def datasets(
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Dataset folder. (default: $DIGITKIT_DATA, else the user cache dir)"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Every dataset digitkit trains on: present or not, where, how big, and how to get a missing one."""
    from digitkit.catalog import datasets as listing

    entries = _run(lambda: listing(data_dir))
    if as_json:
        for e in entries:
            _print_json(e.to_dict())
        return
    rows = [["NAME", "KIND", "PRESENT", "FILES", "SIZE", "WHERE"]]
    for e in entries:
        rows.append([e.name, e.kind, e.present + (f" ({e.note})" if e.note else ""), f"{e.files:,}", _mb(e.size_bytes), e.where])
    _table(rows)
    for e in entries:
        for step in e.get:
            sys.stdout.write(f"{e.name}: {step}\n")


def main() -> None:
    app(prog_name="digitkit")


if __name__ == "__main__":
    main()
