"""Training-step time in fp32 against bf16 autocast on this CPU, for the models `digitkit train` builds: the
evidence behind what `--precision auto` picks.

    python bench/precision.py [--steps 6] [--threads N]

Each model takes training steps (forward, loss, backward, SGD step; channels-last for the conv nets, as the
training loop runs them) on random tensors of its real input shape, at a batch size its recipes use: 128 (the
MNIST `accurate` preset), 256 (the CIFAR resnet), 16 (speech). fp32 and bf16 alternate step by step so that
clock or load drift hits both alike. Prints median seconds per step, the bf16/fp32 ratio, and what
auto picks here. No data directory is needed: speed does not depend on pixel values.
"""

from __future__ import annotations

import argparse
import statistics
import time


def _cases():
    from digitkit.models.cnn import CNN, CNNConfig
    from digitkit.models.resnet import ResNet, ResNetConfig
    from digitkit.models.speech import SpeechConfig, SpeechRecognizer

    # name, model factory, input shape (batch first), convolutional?
    return [
        ("mnist cnn, batch 128", lambda: CNN(CNNConfig()), (128, 1, 28, 28), True),
        ("cifar10 resnet, batch 256", lambda: ResNet(ResNetConfig()), (256, 3, 32, 32), True),
        ("fsdd lstm, batch 16 x 1 s", lambda: SpeechRecognizer(SpeechConfig()), (16, 101, 40), False),
    ]


def _step_fn(model, shape, convolutional: bool):
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    x = torch.randn(*shape)
    if convolutional:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (shape[0],))
    else:
        lengths = torch.full((shape[0],), shape[1])
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def loss_of(out):
        if convolutional:
            return F.cross_entropy(out.float(), y)
        return out.float().pow(2).mean()  # the speech net's CTC head costs the same in both; any scalar will do

    def step(dtype) -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            out = model(x) if convolutional else model(x, lengths)[0]
            loss = loss_of(out)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="timed steps per precision and model (after one warm-up each)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    args = parser.parse_args()

    import torch

    from digitkit.training.loop import cpu_bf16_instructions, cpu_has_fast_bf16, pick_precision

    if args.threads:
        torch.set_num_threads(args.threads)
    flags = cpu_bf16_instructions()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, capability "
          f"{torch.backends.cpu.get_cpu_capability()}, bf16 matrix instructions: {flags} -> fast bf16: {cpu_has_fast_bf16()}")
    print(f"{'model':<28} {'fp32 s/step':>12} {'bf16 s/step':>12} {'bf16 speed-up':>14}  auto picks")
    cpu = torch.device("cpu")
    for name, make, shape, convolutional in _cases():
        step = _step_fn(make(), shape, convolutional)
        times: dict[str, list[float]] = {"fp32": [], "bf16": []}
        for i in range(args.steps + 1):
            for label, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
                seconds = step(dtype)
                if i:  # the first step of each warms caches and oneDNN's kernel choice
                    times[label].append(seconds)
        fp32, bf16 = statistics.median(times["fp32"]), statistics.median(times["bf16"])
        picked = pick_precision("auto", cpu, convolutional=convolutional).dtype
        print(f"{name:<28} {fp32:>12.4f} {bf16:>12.4f} {fp32 / bf16:>13.2f}x  {'bf16' if picked else 'fp32'}", flush=True)


if __name__ == "__main__":
    main()
