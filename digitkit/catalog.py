"""What is on this machine, answered without importing torch (each answer in well under a second): a checkpoint's
or exported model's description (`info`), the shipped models and the checkpoints under a runs folder (`models`),
and the datasets, present or not, with how to get a missing one (`datasets`).

A `.safetensors` header is plain JSON after an 8-byte length, so metadata and tensor shapes are read directly; a
TorchScript archive is a zip whose metadata is one file in it; ONNX metadata needs the `onnx` package."""

from __future__ import annotations

import json
import math
import os
import struct
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from digitkit.errors import CheckpointError

_HEADER_LIMIT = 100 << 20  # a digitkit header is kilobytes; a larger length is a foreign or damaged file


def _safetensors_header(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise CheckpointError(f"{path}: not a readable .safetensors file (shorter than its header)")
            (n,) = struct.unpack("<Q", raw)
            if n > _HEADER_LIMIT:
                raise CheckpointError(f"{path}: not a readable .safetensors file (header length {n:,})")
            header = json.loads(f.read(n))
    except OSError as exc:
        raise CheckpointError(f"{path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise CheckpointError(f"{path}: not a readable .safetensors file (damaged header)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a readable .safetensors file (damaged header)")
    return header


def _parameters(shapes: list[list[int]]) -> int:
    return sum(math.prod(s) for s in shapes)


@dataclass
class ModelInfo:
    path: str
    file_format: str  # safetensors | onnx | torchscript
    size_bytes: int
    model: str
    model_config: dict[str, Any]
    parameters: int | None
    dataset: str
    kind: str  # image | speech
    classes: list[str]
    input: dict[str, Any]
    metrics: dict[str, Any]
    train_config: dict[str, Any]
    versions: dict[str, str]
    created: str
    epochs: int  # rows of training history stored
    resumable: bool  # holds the optimizer state `train --resume` continues from

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _loads(meta: dict[str, str], key: str, default: Any) -> Any:
    return json.loads(meta[key]) if key in meta else default


def info(path: str | os.PathLike) -> ModelInfo:
    """Describe a checkpoint (.safetensors), a model `digitkit export` wrote (.onnx, TorchScript), or a shipped model
    by the name `digitkit models` lists (`digits`), as every other command takes it."""
    from digitkit.checkpoint import FORMAT
    from digitkit.export import EXPORT_FORMAT, METADATA_FILE, format_of
    from digitkit.weights import model_file

    path = model_file(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    fmt = format_of(path) or "safetensors"
    parameters: int | None = None
    if fmt == "safetensors":
        header = _safetensors_header(path)
        meta = header.get("__metadata__") or {}
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"{path}: not a digitkit checkpoint (a .safetensors file without digitkit metadata)")
        parameters = _parameters([t["shape"] for k, t in header.items() if k.startswith("model.")])
        model_name = meta.get("model", "")
    elif fmt == "torchscript":
        try:
            with zipfile.ZipFile(path) as archive:
                name = next((n for n in archive.namelist() if n.endswith(f"extra/{METADATA_FILE}")), None)
                meta = json.loads(archive.read(name)) if name else {}
        except (zipfile.BadZipFile, OSError, json.JSONDecodeError, KeyError):
            raise CheckpointError(f"{path}: not a readable TorchScript archive") from None
        model_name = meta.get("model_name", "")
    else:
        try:
            import onnx
        except ImportError:
            raise CheckpointError('reading an .onnx file needs the onnx extra: pip install "digitkit[onnx]"') from None
        try:
            proto = onnx.load(str(path))
        except Exception as exc:  # onnx raises protobuf's own decode errors for a damaged or foreign file
            raise CheckpointError(f"{path}: not a readable ONNX model ({str(exc).splitlines()[0][:200]})") from None
        meta = {p.key: p.value for p in proto.metadata_props}
        parameters = _parameters([list(t.dims) for t in proto.graph.initializer])
        model_name = meta.get("model_name", "")
    if fmt != "safetensors" and meta.get("format") != EXPORT_FORMAT:
        raise CheckpointError(f"{path}: not a model digitkit exported (no digitkit metadata in the file)")
    try:
        history = _loads(meta, "history", [])
        given = _loads(meta, "input", {})
        return ModelInfo(
            path=str(path), file_format=fmt, size_bytes=path.stat().st_size, model=model_name,
            model_config=_loads(meta, "model_config", {}), parameters=parameters, dataset=meta.get("dataset", ""),
            kind=given.get("kind", "image"), classes=_loads(meta, "classes", []), input=given,
            metrics=_loads(meta, "metrics", {}), train_config=_loads(meta, "train_config", {}),
            versions=_loads(meta, "versions", {}), created=meta.get("created", ""), epochs=len(history),
            resumable=bool(_loads(meta, "train_state", None)),
        )
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise CheckpointError(f"{path}: digitkit metadata is damaged ({exc.__class__.__name__})") from None


@dataclass
class ModelEntry:
    name: str  # a shipped model's name (for --model NAME), or the checkpoint's path
    shipped: bool
    path: str
    model: str
    dataset: str
    metrics: dict[str, Any]  # the test figures stored in it
    created: str
    size_bytes: int
    problem: str = ""  # why it could not be read, for a damaged file under runs/

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _test_figures(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k.startswith("test_")}


def models(runs: str | os.PathLike | None = "runs") -> list[ModelEntry]:
    """The shipped models, then every checkpoint under `runs` (recursively; tuning trials included), newest first."""
    from digitkit.weights import shipped_files

    found = []
    for name, path in shipped_files().items():
        if path.is_file():
            i = info(path)
            found.append(ModelEntry(name, True, str(path), i.model, i.dataset, _test_figures(i.metrics), i.created,
                                    i.size_bytes))
    local = []
    folder = Path(runs) if runs is not None else None
    if folder is not None and folder.is_dir():
        for path in sorted(folder.rglob("*.safetensors")):
            try:
                i = info(path)
                local.append(ModelEntry(str(path), False, str(path), i.model, i.dataset, _test_figures(i.metrics),
                                        i.created, i.size_bytes))
            except CheckpointError as exc:
                local.append(ModelEntry(str(path), False, str(path), "", "", {}, "", path.stat().st_size, str(exc)))
    return found + sorted(local, key=lambda e: e.created, reverse=True)


@dataclass
class DatasetEntry:
    name: str
    kind: str  # image | speech
    title: str
    present: str  # "yes", "partial" or "no"
    where: str  # the folder its files were found in, or where they go
    files: int
    size_bytes: int
    note: str = ""  # what is partial, which sources a mixture found
    get: list[str] = field(default_factory=list)  # for a missing or partial one: how to get it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _size(files: list[Path]) -> int:
    return sum(f.stat().st_size for f in files)


def _wavs(folder: Path) -> list[Path]:
    return [Path(e.path) for e in os.scandir(folder) if e.name.endswith(".wav")] if folder.is_dir() else []


def _image_entry(spec: Any, data_dir: Path) -> DatasetEntry:
    home = data_dir / spec.folder
    if spec.name == "cifar10":
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        files = [home / n for n in names if (home / n).is_file()]
        present = "yes" if len(files) == len(names) else "partial" if (home / "test_batch").is_file() and len(files) > 1 else "no"
        note = f"{len(files) - ('test_batch' in [f.name for f in files])} of 5 training batches" if present == "partial" else ""
        where = home
    else:
        folders = [home] + [Path(d) for d in spec.system_dirs]
        where = next((f for f in folders if all((f / r.name).is_file() for r in spec.files)), home)
        files = [where / r.name for r in spec.files if (where / r.name).is_file()]
        present = "yes" if len(files) == len(spec.files) else "partial" if files else "no"
        note = "" if present != "partial" else f"missing {', '.join(r.name for r in spec.files if not (where / r.name).is_file())}"
    get = []
    if present != "yes":
        get.append(f"`digitkit train {spec.name}` downloads it (checksummed) into {home}/")
        get += [f"or put {r.name} from {r.mirrors[0]}/{r.name} in {home if spec.name != 'cifar10' else data_dir}/"
                for r in spec.files]
        if spec.system_dirs:
            get.append(f"or on Debian/Ubuntu: sudo apt-get install dataset-{spec.name} (files in {spec.system_dirs[0]}/)")
    return DatasetEntry(spec.name, "image", spec.title, present, str(where), len(files), _size(files), note, get)


def _speech_entries(data_dir: Path) -> list[DatasetEntry]:
    from digitkit.data.speech import SPEECH_DATASETS

    fsdd_spec, sc_spec, digits_spec = (SPEECH_DATASETS[n] for n in ("fsdd", "speechcommands", "digits"))
    fsdd = _wavs(data_dir / fsdd_spec.folder)
    sc_root = data_dir / sc_spec.folder
    versions = sorted(p for p in sc_root.glob("speech_commands_v0.0*") if p.is_dir()) if sc_root.is_dir() else []
    sc = [w for v in versions for d in sorted(v.iterdir()) if d.is_dir() and not d.name.startswith("_") for w in _wavs(d)]
    an4_root = data_dir / "an4-digits"
    an4 = [w for w in an4_root.rglob("*.wav")] if (an4_root / "transcripts.tsv").is_file() else []
    entries = [
        DatasetEntry("fsdd", "speech", fsdd_spec.title, "yes" if fsdd else "no", str(data_dir / fsdd_spec.folder),
                     len(fsdd), _size(fsdd), "" if fsdd else "", [] if fsdd else [fsdd_spec.hint]),
        DatasetEntry("speechcommands", "speech", sc_spec.title, "yes" if sc else "no", str(sc_root), len(sc), _size(sc),
                     ", ".join(v.name for v in versions), [] if sc else [sc_spec.hint]),
    ]
    sources = [name for name, files in (("fsdd", fsdd), ("speech commands", sc), ("an4-digits", an4)) if files]
    get = [] if len(sources) == 3 else [digits_spec.hint]
    entries.append(DatasetEntry("digits", "speech", digits_spec.title, "yes" if len(sources) == 3 else "partial" if fsdd else "no",
                                str(data_dir), len(fsdd) + len(sc) + len(an4), _size(fsdd) + _size(sc) + _size(an4),
                                f"sources present: {', '.join(sources) or 'none'}", get))
    return entries


def datasets(data_dir: str | os.PathLike | None = None) -> list[DatasetEntry]:
    """Every dataset digitkit trains on: present or not in the data folder (`--data-dir`, else $DIGITKIT_DATA, else
    the user cache), where, how big, and for a missing one how to get it."""
    from digitkit.data.paths import resolve_data_dir
    from digitkit.data.registry import DATASETS

    folder = resolve_data_dir(data_dir)
    return [_image_entry(spec, folder) for spec in DATASETS.values()] + _speech_entries(folder)
