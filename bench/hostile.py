"""The audit's fuzz at full size: 1,650 mutated images and 420 mutated audio files (the test suite runs 200 and
120 of the same kinds, tests/test_hostile.py), each set read by one `digitkit` process between good files. Reports
tracebacks (expected 0), inputs without exactly one line, good answers lost, and the peak memory against a run of
the good files alone.

    DIGITKIT_DATA=../shared/datasets python bench/hostile.py [--images 1650] [--audio 420]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_hostile import CLIP, EXAMPLES, assert_clean_batch, mutations, run_measured  # noqa: E402


def fuzz(kind: str, seeds: list[tuple[bytes, str]], count: int, folder: Path, good: dict[str, str]) -> None:
    paths = []
    per_seed = -(-count // len(seeds))
    for i, (seed, suffix) in enumerate(seeds):
        for j, data in enumerate(mutations(seed, per_seed, seed=1000 + i)):
            if len(paths) == count:
                break
            path = folder / f"{kind}-{i}-{j}.{suffix}"
            path.write_bytes(data)
            paths.append(str(path))
    command = "predict" if kind == "image" else "transcribe"
    _, baseline = run_measured([command, *good])
    inputs = list(good)[:1] + paths + list(good)[1:]
    start = time.perf_counter()
    proc, peak = run_measured([command, "-"], stdin="\n".join(inputs) + "\n")
    seconds = time.perf_counter() - start
    errors = sum(line.startswith("digitkit: error:") for line in proc.stderr.splitlines())
    tracebacks = proc.stderr.count("Traceback")
    try:
        assert_clean_batch(proc, inputs, good)
        verdict = "clean: one line per input, good answers printed"
    except AssertionError as exc:
        verdict = f"NOT clean: {str(exc)[:300]}"
    print(f"{kind}: {len(paths):,} fuzzed files in {seconds:.0f} s; {errors:,} one-line errors, {len(proc.stdout.splitlines()):,} "
          f"answers, {tracebacks} tracebacks, exit {proc.returncode}; peak {peak / 2**20:,.0f} MB against "
          f"{baseline / 2**20:,.0f} MB for the good files alone (+{(peak - baseline) / 2**20:,.0f} MB); {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1650)
    parser.add_argument("--audio", type=int, default=420)
    args = parser.parse_args()
    import soundfile as sf
    from PIL import Image

    jpeg = io.BytesIO()
    Image.open(EXAMPLES[5]).save(jpeg, format="JPEG")
    flac = io.BytesIO()
    sf.write(flac, sf.read(CLIP, dtype="float32")[0], 8000, format="FLAC")
    with tempfile.TemporaryDirectory() as tmp:
        fuzz("image", [(p.read_bytes(), "png") for p in EXAMPLES] + [(jpeg.getvalue(), "jpg")], args.images, Path(tmp),
             {str(EXAMPLES[7]): "7", str(EXAMPLES[2]): "2"})
        fuzz("audio", [(CLIP.read_bytes(), "wav"), (flac.getvalue(), "flac")], args.audio, Path(tmp), {str(CLIP): "3"})


if __name__ == "__main__":
    main()
