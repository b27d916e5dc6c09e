"""Inference speed of the shipped MNIST model, PyTorch against onnxruntime (its `digitkit export` file), and
start-up cost of the CLI, against `python -c "import torch"`.

    DIGITKIT_DATA=../shared/datasets python bench/inference.py [--repeats 5] [--model CKPT]

1. Batched model throughput (images/s) on the 10,000 real MNIST test digits, the way `digitkit predict` runs
   the network (normalize, channels-last, forward, softmax) in batches of 256; then the same batches through
   onnxruntime (the onnx extra), and the ratio of the two.
2. End-to-end `api.predict` on PNG files (decode, MNIST-style preprocessing, batched forward).
3. Process wall times, alternating in one loop: `python -c "import torch"`, `digitkit --help`,
   `digitkit predict one.png`, the same with `--model mnist-cnn.onnx`, and `digitkit info` / `models` /
   `datasets`; medians and ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def model_throughput(data_dir: Path, model: str | None = None, batch_size: int = 256, repeats: int = 3) -> float:
    import torch

    from digitkit import checkpoint
    from digitkit.data.registry import get_dataset, load
    from digitkit.data.transforms import normalize
    from digitkit.weights import shipped

    ckpt = checkpoint.load(model or shipped("image"))
    net = ckpt.build_model().to(memory_format=torch.channels_last)
    images = load(get_dataset("mnist"), data_dir, allow_download=False).test_x
    mean, std = tuple(ckpt.input["mean"]), tuple(ckpt.input["std"])
    best = 0.0
    with torch.inference_mode():
        for _ in range(repeats):
            start = time.perf_counter()
            for i in range(0, len(images), batch_size):
                x = normalize(images[i : i + batch_size], mean, std).contiguous(memory_format=torch.channels_last)
                torch.softmax(net(x), dim=1)
            best = max(best, len(images) / (time.perf_counter() - start))
    return best


def onnx_throughput(data_dir: Path, model: Path, batch_size: int = 256, repeats: int = 3) -> float:
    import numpy as np
    import onnxruntime as ort

    from digitkit.data.registry import get_dataset, load

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    images = load(get_dataset("mnist"), data_dir, allow_download=False).test_x.numpy()
    import json

    info = json.loads(session.get_modelmeta().custom_metadata_map["input"])
    mean, std = np.float32(info["mean"][0]), np.float32(info["std"][0])
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(images), batch_size):
            x = (images[i : i + batch_size].astype(np.float32) / 255.0 - mean) / std
            (logits,) = session.run(None, {"images": x})
            e = np.exp(logits - logits.max(1, keepdims=True))
            e / e.sum(1, keepdims=True)
        best = max(best, len(images) / (time.perf_counter() - start))
    return best


def files_throughput(data_dir: Path, folder: Path, model: str | None = None, count: int = 2000) -> float:
    from PIL import Image

    from digitkit import api
    from digitkit.data.registry import get_dataset, load

    images = load(get_dataset("mnist"), data_dir, allow_download=False).test_x[:count, 0].numpy()
    paths = []
    for i, pixels in enumerate(images):
        paths.append(folder / f"{i}.png")
        Image.fromarray(255 - pixels).save(paths[-1])
    start = time.perf_counter()
    results = list(api.predict(paths, model=model))
    seconds = time.perf_counter() - start
    assert len(results) == count
    return count / seconds


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default=None, help="image checkpoint (default: the shipped MNIST model)")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DIGITKIT_DATA", "../shared/datasets")))
    args = parser.parse_args()

    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores")
    torch_rate = model_throughput(args.data_dir, args.model)
    print(f"model throughput, batches of 256:   {torch_rate:>10,.0f} images/s (PyTorch)")
    with tempfile.TemporaryDirectory() as tmp:
        from digitkit import api

        onnx_model = Path(api.export(args.model or "mnist", out=Path(tmp) / "mnist-cnn.onnx", data_dir=args.data_dir).path)
        onnx_rate = onnx_throughput(args.data_dir, onnx_model)
        print(f"                                    {onnx_rate:>10,.0f} images/s (onnxruntime)")
        print(f"ratio: onnxruntime / PyTorch images/s = {onnx_rate / torch_rate:.2f}")
        print(f"api.predict on 2,000 PNG files:     {files_throughput(args.data_dir, Path(tmp), args.model):>10,.0f} images/s")
        digit = Path(tmp) / "digit.png"
        from PIL import Image

        img = Image.new("L", (40, 40), 255)
        img.paste(0, (18, 8, 22, 32))  # a plain "1"
        img.save(digit)
        model_option = ["--model", args.model] if args.model else []
        commands = {
            "import torch": [sys.executable, "-c", "import torch"],
            "digitkit --help": [sys.executable, "-m", "digitkit", "--help"],
            "digitkit predict one.png": [sys.executable, "-m", "digitkit", "predict", *model_option, str(digit)],
            "predict --model .onnx": [sys.executable, "-m", "digitkit", "predict", "--model", str(onnx_model), str(digit)],
            "digitkit info": [sys.executable, "-m", "digitkit", "info", str(onnx_model)],
            "digitkit models": [sys.executable, "-m", "digitkit", "models"],
            "digitkit datasets": [sys.executable, "-m", "digitkit", "datasets", "--data-dir", str(args.data_dir)],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, cmd in commands.items():
                times[name].append(timed(cmd))
    base = statistics.median(times["import torch"])
    print(f"{'process':<26} {'median s':>9} {'min s':>7} {'x import torch':>15}")
    for name, values in times.items():
        print(f"{name:<26} {statistics.median(values):>9.3f} {min(values):>7.3f} {statistics.median(values) / base:>15.2f}")
    print(f"ratio: digitkit --help {statistics.median(times['digitkit --help']):.3f} s; "
          f"one predict = {statistics.median(times['digitkit predict one.png']) / base:.2f}x python -c 'import torch'")
    print(f"ratio: one predict with the .onnx model / with the PyTorch model = "
          f"{statistics.median(times['predict --model .onnx']) / statistics.median(times['digitkit predict one.png']):.2f}")


if __name__ == "__main__":
    main()
