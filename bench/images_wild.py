"""Images in the wild: how `digitkit predict` reads photo-like pictures it was never trained on.

    DIGITKIT_DATA=../shared/datasets python bench/images_wild.py [--model CKPT] [--per-font 30]

Every picture is made here (tests/photos.py): text in handwriting-like fonts (Debian's fonts-* packages, see
FONT_PACKAGES) on paper, under uneven light, shadow, tint, coloured ink, noise, blur, JPEG and rotation. The models
learn from MNIST only (and from made-up pen strokes and digit pairs for rejection, never from fonts), so every figure
below is on inputs outside the training distribution. Sections, each with the same-run baseline of the border rule
(the paper's colour taken from the picture's border, everything darker kept as ink, as digitkit read pictures before):

1. single digits, photo-like and clean: accuracy;
2. non-digits (letters unlike any digit, symbols, scribbles, blank paper, words of such letters): share reported as
   not recognised;
3. the 10,000 MNIST test digits through the same reading: share accepted, and accuracy;
4. numbers of 2-8 digits, clean, photo-like and set touching: share read exactly;
5. time per picture.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from photos import FONT_PACKAGES, LETTERS, SYMBOLS, blank, clean, fonts, photo, render, scribble  # noqa: E402


def border_rule(img, size: int = 28) -> np.ndarray:
    """The baseline: paper from the border's median grey, ink = everything darker, cropped, fitted, centred."""
    from digitkit.data.preprocess import fit_box

    gray = np.asarray(img.convert("L"), dtype=np.float32)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    level = float(np.median(border))
    if level > 127:
        gray, level = 255.0 - gray, 255.0 - level
    ink = np.clip(gray - level, 0, None)
    if ink.max() < 32:
        return np.zeros((1, size, size), np.uint8)
    return fit_box(ink)[None]


def baseline_labels(ckpt, images) -> list[str]:
    import torch

    from digitkit.data.transforms import normalize

    net = ckpt.build_model().eval()
    x = normalize(torch.from_numpy(np.stack([border_rule(im) for im in images])), ckpt.input["mean"], ckpt.input["std"])
    with torch.inference_mode():
        return [ckpt.classes[i] for i in net(x).argmax(1).tolist()]


def read(model, images) -> list:
    from digitkit import api

    return list(api.predict(images, model=model))


def digits_section(model, ckpt, per_font: int, seed: int) -> None:
    rng = random.Random(seed)
    for look_name in ("photo", "clean"):
        images, truth, font_of = [], [], []
        for f in fonts():
            for i in range(per_font):
                d = str(i % 10)
                look = photo(rng, f) if look_name == "photo" else clean(f, size=rng.randint(56, 120))
                images.append(render(d, look, seed=rng.randint(0, 2**31)))
                truth.append(d)
                font_of.append(Path(f).stem)
        results = read(model, images)
        right = sum(r.label == t for r, t in zip(results, truth))
        rejected = sum(r.label is None for r in results)
        base = sum(b == t for b, t in zip(baseline_labels(ckpt, images), truth))
        print(f"single digits, {look_name}: {right}/{len(truth)} = {right / len(truth):.1%} right, "
              f"{rejected} not recognised ({len(fonts())} fonts x {per_font}); border rule {base / len(truth):.1%}")
        worst = {}
        for r, t, f in zip(results, truth, font_of):
            worst.setdefault(f, [0, 0])[0] += r.label == t
            worst[f][1] += 1
        print("   per font: " + ", ".join(f"{f} {a}/{n}" for f, (a, n) in sorted(worst.items(), key=lambda kv: kv[1][0])))


def non_digits_section(model, ckpt, per_kind: int, seed: int) -> None:
    rng = random.Random(seed + 1)
    kinds = {
        "letters": [render(rng.choice(LETTERS), photo(rng, rng.choice(fonts())), seed=rng.randint(0, 2**31))
                    for _ in range(per_kind)],
        "symbols": [render(rng.choice(SYMBOLS), photo(rng, rng.choice(fonts())), seed=rng.randint(0, 2**31))
                    for _ in range(per_kind)],
        "scribbles": [scribble(rng) for _ in range(per_kind)],
        "blank paper": [blank(rng) for _ in range(per_kind)],
        # several letters in a row: a number's characters are read with the help of each other (reader._result),
        # so letters side by side must still not pass for one
        "words of 2-6 letters": [render("".join(rng.choice(LETTERS) for _ in range(rng.randint(2, 6))),
                                        photo(rng, rng.choice(fonts())), seed=rng.randint(0, 2**31))
                                 for _ in range(per_kind)],
    }
    total = rejected_all = 0
    for kind, images in kinds.items():
        results = read(model, images)
        rejected = sum(r.label is None for r in results)
        total += len(images)
        rejected_all += rejected
        print(f"non-digits, {kind}: {rejected}/{len(images)} = {rejected / len(images):.1%} not recognised")
    print(f"non-digits, all: {rejected_all}/{total} = {rejected_all / total:.1%} not recognised (border rule: 0 %, "
          "it always names a digit)")


def mnist_section(model, data_dir: Path) -> None:
    from digitkit.data.registry import get_dataset, load

    splits = load(get_dataset("mnist"), data_dir, allow_download=False)
    images = list(splits.test_x[:, 0].numpy())
    start = time.perf_counter()
    results = read(model, images)
    seconds = time.perf_counter() - start
    truth = [str(int(y)) for y in splits.test_y]
    accepted = [(r, t) for r, t in zip(results, truth) if r.label is not None]
    right = sum(r.label == t for r, t in accepted)
    print(f"MNIST test digits read as pictures: {len(accepted)}/{len(truth)} = {len(accepted) / len(truth):.2%} accepted; "
          f"{right / max(len(accepted), 1):.2%} of those right ({right / len(truth):.2%} of all); "
          f"{seconds / len(truth) * 1000:.2f} ms each")


def numbers_section(model, per_look: int, seed: int) -> None:
    rng = random.Random(seed + 2)
    for look_name in ("clean", "photo", "touching"):
        images, truth = [], []
        for i in range(per_look):
            text = "".join(rng.choice("0123456789") for _ in range(rng.randint(2, 8)))
            f = fonts()[i % len(fonts())]
            look = photo(rng, f) if look_name == "photo" else clean(f, size=rng.randint(56, 120))
            if look_name == "touching":  # set so close that neighbours touch, often overlapping in columns
                look = replace(look, tracking=-rng.uniform(0.04, 0.1))
            images.append(render(text, look, seed=rng.randint(0, 2**31)))
            truth.append(text)
        results = read(model, images)
        exact = sum(r.label == t for r, t in zip(results, truth))
        digits_right = sum(sum(a == b for a, b in zip(r.label or "", t)) for r, t in zip(results, truth)
                           if r.label is not None and len(r.label) == len(t))
        print(f"numbers of 2-8 digits, {look_name}: {exact}/{len(truth)} = {exact / len(truth):.1%} read exactly "
              f"({digits_right / sum(map(len, truth)):.1%} of digits right where the count was)")
        misses = [(t, r.label) for r, t in zip(results, truth) if r.label != t][:8]
        print(f"   e.g. {misses}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="image checkpoint (default: the shipped MNIST model)")
    parser.add_argument("--per-font", type=int, default=30, help="single digits per font and look")
    parser.add_argument("--per-kind", type=int, default=200, help="non-digit pictures per kind")
    parser.add_argument("--numbers", type=int, default=200, help="numbers per look")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DIGITKIT_DATA", "../shared/datasets")))
    args = parser.parse_args()
    if len(fonts()) < 6:
        sys.exit(f"the handwriting fonts are missing: apt-get install {FONT_PACKAGES}")

    from digitkit import checkpoint
    from digitkit.weights import shipped

    ckpt = checkpoint.load(args.model or shipped("image"))
    print(f"model: {args.model or 'shipped mnist'} (temperature {ckpt.input.get('temperature', 1.0):.3f}, "
          f"min confidence {ckpt.input.get('min_confidence', 0.0):.3f}); {len(fonts())} fonts")
    start = time.perf_counter()
    digits_section(args.model, ckpt, args.per_font, args.seed)
    non_digits_section(args.model, ckpt, args.per_kind, args.seed)
    mnist_section(args.model, args.data_dir)
    numbers_section(args.model, args.numbers, args.seed)
    print(f"({time.perf_counter() - start:.0f} s in all)")


if __name__ == "__main__":
    main()
