"""A checkpoint's model for use without digitkit: ONNX (onnxruntime in Python, C++, C#, a browser, a phone) or
TorchScript (libtorch in C++). The file carries what a user needs to feed it (the checkpoint's metadata: classes,
input normalisation or mel settings, calibration, test figures, plus a plain description of each input and
output), and is written only after it agrees with the PyTorch model on the real test inputs of the model's own
dataset: the largest output difference is reported, and any differing decision (image class, or speech greedy
transcript) fails the export.

Both formats go through TorchScript tracing (`torch.onnx.export(dynamo=False)` for ONNX): `torch.export`, which the
newer ONNX exporter needs, cannot take the packed sequences the speech models use for padded batches."""

from __future__ import annotations

import json
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from digitkit.errors import DigitkitError

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
EXPORT_FORMAT = "digitkit-export"
METADATA_FILE = "digitkit.json"  # TorchScript: the extra file inside the archive that holds the metadata
PROB_TOLERANCE = 1e-3  # largest difference in a probability that still counts as agreeing


class ExportError(DigitkitError):
    """The exported model does not agree with PyTorch, or the export itself failed."""


@dataclass
class IO:
    """How a model family is called: input and output names (in order), the axes that vary, an example input to
    trace with, and a sentence per name for people using the file without digitkit."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic_axes: dict[str, dict[int, str]]
    example: tuple[Any, ...]
    described: dict[str, str]


@dataclass
class ExportResult:
    path: str
    format: str
    checkpoint: str
    model: str
    dataset: str
    checked_on: str  # the real inputs the file was checked against, e.g. "MNIST test set"
    inputs_checked: int  # 0 when the check was skipped
    decisions_agree: int
    max_abs_diff: float  # over the raw outputs (logits or log-probabilities)
    max_prob_diff: float
    seconds: float
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def metadata(ckpt: Any, io: IO) -> dict[str, str]:
    """String -> JSON string, as in the checkpoint, without its training state and history."""
    return {
        "format": EXPORT_FORMAT,
        "model_name": ckpt.model_name,
        "model_config": json.dumps(ckpt.model_config),
        "dataset": ckpt.dataset,
        "classes": json.dumps(ckpt.classes),
        "input": json.dumps(ckpt.input),
        "metrics": json.dumps(ckpt.metrics),
        "versions": json.dumps(ckpt.versions),
        "created": ckpt.created,
        "io": json.dumps(io.described),
    }


@contextmanager
def _quiet() -> Iterator[None]:
    """torch warns about every TorchScript call (deprecated in favour of torch.export, which cannot take the speech
    models) and about RNN batch sizes our check covers: none of it is for the user."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def write_onnx(model: Any, io: IO, meta: dict[str, str], path: Path) -> None:
    import torch

    try:
        import onnx
    except ImportError:
        raise ExportError('ONNX export needs the onnx extra: pip install "digitkit[onnx]"') from None
    with _quiet():
        torch.onnx.export(model, io.example, str(path), input_names=list(io.inputs), output_names=list(io.outputs),
                          dynamic_axes=io.dynamic_axes, opset_version=17, dynamo=False)
    proto = onnx.load(str(path))
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "digitkit"
    onnx.save(proto, str(path))


def write_torchscript(model: Any, io: IO, meta: dict[str, str], path: Path) -> None:
    import torch

    with _quiet():
        traced = torch.jit.trace(model, io.example, check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={METADATA_FILE: json.dumps(meta)})


class OnnxRunner:
    """An exported ONNX model run by onnxruntime on the CPU, called like the PyTorch model (tensors in, tensors out)."""

    def __init__(self, path: Path):
        try:
            import onnxruntime as ort
        except ImportError:
            raise DigitkitError('running an .onnx model needs the onnx extra: pip install "digitkit[onnx]"') from None
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: its notes on graph rewrites are not for the user
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for a damaged or foreign file
            raise DigitkitError(f"{path}: not an ONNX model onnxruntime can run ({str(exc).splitlines()[0][:200]})") from None
        self.inputs = [i.name for i in self.session.get_inputs()]

    def metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def numpy(self, *arrays: Any) -> Any:
        """numpy in, the first output out: the path that needs no torch."""
        return self.session.run(None, dict(zip(self.inputs, arrays)))[0]

    def __call__(self, *args: Any) -> Any:
        import numpy as np
        import torch

        feed = {name: np.ascontiguousarray(a.detach().cpu().numpy()) for name, a in zip(self.inputs, args)}
        out = [torch.from_numpy(o) for o in self.session.run(None, feed)]
        return out[0] if len(out) == 1 else tuple(out)


def format_of(path: Path) -> str | None:
    """The export format of a model file: ONNX by its name (.onnx; its protobuf has no signature to look for),
    TorchScript by its content (a zip archive, whatever it is called); None for anything else (a checkpoint)."""
    if path.suffix.lower() == FORMATS["onnx"]:
        return "onnx"
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return None
    return "torchscript" if head == b"PK\x03\x04" or path.suffix.lower() == FORMATS["torchscript"] else None


def load_exported(path: Path, fmt: str) -> tuple[Callable[..., Any], dict[str, str]]:
    """(a callable model, its metadata) of a file `export` wrote in `fmt`."""
    if fmt == "onnx":
        runner = OnnxRunner(path)
        return runner, runner.metadata()
    import torch

    files = {METADATA_FILE: ""}
    try:
        with _quiet():
            model = torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    except (RuntimeError, ValueError) as exc:
        raise DigitkitError(f"{path}: not a TorchScript archive ({str(exc).strip().splitlines()[0][:200]})") from None
    raw = files[METADATA_FILE]
    return model, json.loads(raw) if raw else {}


def as_module(model: Any, device: Any = "cpu") -> Any:
    """An exported model as the `nn.Module` the readers call: a TorchScript module moved to `device`; an ONNX runner
    wrapped (it runs on the CPU whatever `device` says, and takes the tensors from wherever they are)."""
    import torch

    if isinstance(model, torch.nn.Module):
        return model.to(device).eval()

    class Exported(torch.nn.Module):
        def forward(self, *args: Any) -> Any:
            out = model(*args)
            where = args[0].device  # back where the caller's tensors are
            return tuple(o.to(where) for o in out) if isinstance(out, tuple) else out.to(where)

    return Exported().eval()


def _outputs(out: Any) -> tuple[Any, ...]:
    return out if isinstance(out, tuple) else (out,)


def compare(reference: Any, exported: Callable[..., Any], batches: Iterable[tuple[Any, ...]],
            decide: Callable[[tuple[Any, ...]], list[Any]]) -> tuple[int, int, float, float]:
    """(inputs checked, decisions that agree, largest raw output difference, largest probability difference) of
    the exported model against the PyTorch one, batch by batch."""
    import torch

    checked = agree = 0
    max_abs = max_prob = 0.0
    probs = lambda o: torch.softmax(o.float(), -1)  # logits and log-probabilities alike
    with _quiet(), torch.inference_mode():
        for batch in batches:
            ref, got = _outputs(reference(*batch)), _outputs(exported(*batch))
            if ref[0].shape != got[0].shape:
                raise ExportError(f"the exported model's output has shape {tuple(got[0].shape)}, PyTorch's {tuple(ref[0].shape)}")
            diff = (ref[0].float() - got[0].float()).abs()
            max_abs = max(max_abs, float(diff.max()) if diff.numel() else 0.0)
            max_prob = max(max_prob, float((probs(ref[0]) - probs(got[0])).abs().max()) if diff.numel() else 0.0)
            a, b = decide(ref), decide(got)
            checked += len(a)
            agree += sum(x == y for x, y in zip(a, b))
    return checked, agree, max_abs, max_prob


def export(ckpt: Any, source: str, fmt: str, out: Path, check: Iterable[tuple[Any, ...]] | None, checked_on: str,
           reporter: Any) -> ExportResult:
    """Write `ckpt`'s model to `out` in `fmt`, after checking it against PyTorch on `check`'s batches (None skips
    the check). Nothing is left at `out` when the export or the check fails."""
    from digitkit import tasks
    from digitkit.atomic import atomic_path

    if fmt not in FORMATS:
        raise DigitkitError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    task = tasks.for_checkpoint(ckpt)
    model = ckpt.build_model("cpu")
    io = task.export_io(ckpt)
    start = time.perf_counter()
    try:
        with atomic_path(out) as tmp:
            try:
                (write_onnx if fmt == "onnx" else write_torchscript)(model, io, metadata(ckpt, io), tmp)
            except ExportError:
                raise
            except Exception as exc:  # the exporters' own errors: name the model that could not go
                raise ExportError(f"could not export the {ckpt.model_name} model to {fmt}: {str(exc).splitlines()[0][:300]}") from None
            checked = agree = 0
            max_abs = max_prob = 0.0
            if check is not None:
                exported, _ = load_exported(tmp, fmt)
                checked, agree, max_abs, max_prob = compare(model, exported, check, task.export_decisions)
                reporter.info(f"checked on {checked:,} inputs of the {checked_on}: {agree:,} decisions agree, largest "
                              f"difference {max_abs:.2e} (outputs), {max_prob:.2e} (probabilities)")
                if checked == 0:
                    raise ExportError(f"the {checked_on} gave no inputs to check the exported model on")
                if agree != checked or max_prob > PROB_TOLERANCE:
                    raise ExportError(f"the exported model disagrees with PyTorch: {checked - agree} of {checked:,} "
                                      f"decisions differ, probabilities differ by up to {max_prob:.2e}; nothing written")
    except OSError as exc:  # a folder that went read-only, a full disk, a path the system refuses
        raise ExportError(f"cannot write {out}: {exc.strerror or exc}") from None
    return ExportResult(str(out), fmt, source, ckpt.model_name, ckpt.dataset, checked_on if check is not None else "",
                        checked, agree, max_abs, max_prob, time.perf_counter() - start, out.stat().st_size)
