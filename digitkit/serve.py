"""`digitkit serve`: a local web page to draw digits, upload photos and clips, and speak to the models, with the JSON
API behind it (`POST /api/predict`, `POST /api/transcribe`, `GET /api/models`: the same results and field names as
`--json` on the command line).

Starlette on uvicorn: three routes and a page need routing, uploads and a test client, which Starlette has; FastAPI
would add pydantic and request models for answers we already serialise ourselves. Everything the page loads is
served from here (no CDN), so it works offline.

Safe by default: bound to 127.0.0.1 unless told otherwise; a request body is read up to a size limit and refused
beyond it (413); an upload is decoded from memory (no path from the client is ever opened); a bad upload gets a
JSON error with a 4xx status. One model of each kind is loaded and shared: a lock per model serialises its use, so
concurrent requests never interleave inside a reader or recognizer (on a 2-core CPU they would only compete for the
same cores anyway).
"""

from __future__ import annotations

import base64
import io
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from digitkit.errors import DigitkitError

MAX_IMAGE_BYTES = 10 << 20  # a phone photo is 2-6 MB
MAX_AUDIO_BYTES = 30 << 20  # about five minutes of 48 kHz 16-bit mono WAV, what the page records
IMAGE_TYPES = ("image/",)
AUDIO_TYPES = ("audio/", "video/webm", "video/mp4")


class HTTPProblem(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Loaded:
    """One model of one kind, its lock, and what `GET /api/models` says of it."""

    runner: Any
    lock: threading.Lock
    about: dict[str, Any]


def _about(path: Path, ckpt: Any) -> dict[str, Any]:
    metrics = {k: v for k, v in ckpt.metrics.items() if k.startswith("test_")}
    return {"file": path.name, "model": ckpt.model_name, "dataset": ckpt.dataset, "classes": ckpt.classes,
            "created": ckpt.created, "metrics": metrics}


class Models:
    """The image model (a `reader.Reader` that reports every class's probability) and the speech model (a
    `recognize.Recognizer`), each loaded once."""

    def __init__(self, image_model: Any = None, speech_model: Any = None, device: str = "cpu"):
        from digitkit.api import _model_for
        from digitkit.device import pick_device
        from digitkit.reader import Reader
        from digitkit.recognize import DEFAULT_MIN_CONFIDENCE, Recognizer

        dev = pick_device(device)
        path, ckpt, _ = _model_for(image_model, "image")
        self.image = Loaded(Reader(ckpt, dev, top_k=len(ckpt.classes)), threading.Lock(), _about(path, ckpt))
        path, ckpt, _ = _model_for(speech_model, "speech")
        self.speech = Loaded(Recognizer(ckpt, dev, min_confidence=DEFAULT_MIN_CONFIDENCE), threading.Lock(),
                             _about(path, ckpt))
        self._warm_up()

    def _warm_up(self) -> None:
        """One picture and one clip through each model before the first visitor: the first call pays for lazy
        imports and first-run kernel set-up (about a second), which would otherwise be the first drawing's wait."""
        import numpy as np
        import soundfile as sf
        from PIL import Image

        page = Image.new("L", (64, 64), 255)
        page.paste(0, (30, 12, 36, 52))  # a stroke: a "1"
        buffer = io.BytesIO()
        page.save(buffer, format="PNG")
        self.predict(buffer.getvalue(), "warm-up.png")
        clip = io.BytesIO()
        noise = np.random.default_rng(0).normal(0, 0.01, 8000).astype(np.float32)
        sf.write(clip, noise, 8000, format="WAV")
        self.transcribe(clip.getvalue(), "warm-up.wav", ".wav")

    def predict(self, data: bytes, name: str) -> dict[str, Any]:
        from digitkit.data.preprocess import open_image_bytes
        from digitkit.errors import Failure

        picture = open_image_bytes(data, name)  # InputError for what is not a picture
        start = time.perf_counter()
        with self.image.lock:
            (result,) = list(self.image.runner.read([picture], batch_size=64))
        if isinstance(result, Failure):
            raise HTTPProblem(422, result.error)
        out = result.to_dict()
        out["path"] = name
        for character, item in zip(result.characters, out["characters"]):
            item["input_png"] = _png_data_url(character.array)
        out["ms"] = round(1000 * (time.perf_counter() - start), 1)
        return out

    def transcribe(self, data: bytes, name: str, suffix: str) -> dict[str, Any]:
        start = time.perf_counter()
        with tempfile.NamedTemporaryFile(suffix=suffix) as f:  # the readers take a file; the name is ours
            f.write(data)
            f.flush()
            with self.speech.lock:
                result = self.speech.runner.transcribe(f.name)
        out = result.to_dict()
        out["path"] = name
        out["ms"] = round(1000 * (time.perf_counter() - start), 1)
        return out


def _png_data_url(array: Any) -> str | None:
    if array is None:
        return None
    from digitkit.reader import input_picture

    buffer = io.BytesIO()
    input_picture(array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


async def _body(request: Any, limit: int, kinds: tuple[str, ...]) -> tuple[bytes, str, str]:
    """(the uploaded file's bytes, its name, its content type) from a raw body or a multipart form's `file` field,
    read no further than `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + 4096:
        raise HTTPProblem(413, f"upload too large: {int(declared):,} bytes, at most {limit:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit + 4096:  # a multipart envelope adds a few hundred bytes
            raise HTTPProblem(413, f"upload too large: more than {limit:,} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    content_type = request.headers.get("content-type", "")
    name, kind = "upload", content_type.split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        from starlette.datastructures import UploadFile
        from starlette.formparsers import MultiPartException, MultiPartParser

        async def once():
            yield body

        try:
            form = await MultiPartParser(request.headers, once(), max_files=1, max_fields=10).parse()
        except MultiPartException as exc:
            raise HTTPProblem(400, f"malformed multipart upload: {exc.message}") from None
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPProblem(400, "send the file as the form field 'file' (or as the raw request body)")
        body, name, kind = await upload.read(), Path(upload.filename or "upload").name, (upload.content_type or "").lower()
    if len(body) > limit:
        raise HTTPProblem(413, f"upload too large: {len(body):,} bytes, at most {limit:,}")
    if not body:
        raise HTTPProblem(400, "empty upload")
    if kind and kind != "application/octet-stream" and not kind.startswith(kinds):
        raise HTTPProblem(415, f"{kind} is not an accepted type here ({', '.join(k.rstrip('/') + '/*' if k.endswith('/') else k for k in kinds)})")
    return body, name, kind


_AUDIO_SUFFIX = {"audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav", "audio/flac": ".flac",
                 "audio/ogg": ".ogg", "audio/mp4": ".m4a", "audio/x-m4a": ".m4a", "audio/aac": ".m4a",
                 "audio/mpeg": ".mp3", "audio/webm": ".webm", "video/webm": ".webm", "video/mp4": ".m4a"}


def create_app(image_model: Any = None, speech_model: Any = None, device: str = "cpu") -> Any:
    """The web app (an ASGI application): the page, its JSON API, and the models it serves, loaded once."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import HTMLResponse, JSONResponse
    from starlette.routing import Route

    from digitkit.errors import InputError

    models = Models(image_model, speech_model, device)
    page = resources.files("digitkit.web").joinpath("index.html").read_text(encoding="utf-8")

    def guarded(handler):
        async def endpoint(request):
            try:
                return JSONResponse(await handler(request))
            except HTTPProblem as exc:
                return JSONResponse({"error": str(exc)}, status_code=exc.status)
            except (InputError, DigitkitError) as exc:  # what the readers say of a bad file, in their one line
                return JSONResponse({"error": str(exc)}, status_code=422)
            except Exception as exc:  # a fault of ours: logged, and answered without a traceback
                sys.stderr.write(f"digitkit serve: {request.url.path}: {type(exc).__name__}: {exc}\n")
                return JSONResponse({"error": "internal error (logged by the server)"}, status_code=500)

        return endpoint

    async def predict(request):
        data, name, _ = await _body(request, MAX_IMAGE_BYTES, IMAGE_TYPES)
        return await run_in_threadpool(models.predict, data, name)

    async def transcribe(request):
        data, name, kind = await _body(request, MAX_AUDIO_BYTES, AUDIO_TYPES)
        suffix = Path(name).suffix.lower() if Path(name).suffix else _AUDIO_SUFFIX.get(kind, ".wav")
        return await run_in_threadpool(models.transcribe, data, name, suffix)

    async def about(request):
        return {"image": models.image.about, "speech": models.speech.about, "api": {
            "POST /api/predict": "an image (raw body, or multipart field 'file') -> the fields of `digitkit predict --json`, each character with its 28x28 input as a PNG data URL",
            "POST /api/transcribe": "an audio file (raw body, or multipart field 'file') -> the fields of `digitkit transcribe --json`",
            "GET /api/models": "this"}}

    async def index(request):
        return HTMLResponse(page)

    return Starlette(routes=[
        Route("/", index), Route("/api/models", guarded(about)),
        Route("/api/predict", guarded(predict), methods=["POST"]),
        Route("/api/transcribe", guarded(transcribe), methods=["POST"]),
    ])


def serve(image_model: Any = None, speech_model: Any = None, host: str = "127.0.0.1", port: int = 8000,
          device: str = "cpu", reporter: Any = None) -> None:
    """Serve the page until Ctrl-C."""
    try:
        import uvicorn
    except ImportError:
        raise DigitkitError("digitkit serve needs uvicorn (a dependency of digitkit): pip install uvicorn") from None
    if not 0 < port < 65536:
        raise DigitkitError("--port must be 1-65535")
    app = create_app(image_model, speech_model, device)
    listening = _bound_socket(host, port)
    if reporter is not None:
        shown = f"[{host}]" if ":" in host else host
        reporter.info(f"serving http://{shown}:{port}/ (Ctrl-C stops)" + ("" if host in ("127.0.0.1", "localhost", "::1")
                      else f"; reachable from other machines on {host}"))
    config = uvicorn.Config(app, host=host, port=port, log_level="warning")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[listening])
    except OSError as exc:
        raise DigitkitError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    finally:
        listening.close()


def _bound_socket(host: str, port: int):
    """A socket bound to host:port, before the page is announced: a port in use or an address not of this machine
    is one line here (uvicorn would log it and exit with its own status after the announcement)."""
    import socket

    sock = None
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a server just stopped leaves TIME_WAIT behind
        sock.bind(address)
    except OSError as exc:
        if sock is not None:
            sock.close()
        raise DigitkitError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    return sock
