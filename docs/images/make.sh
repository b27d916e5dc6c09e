#!/usr/bin/env bash
# Redraws every picture in README.md and docs/ with digitkit's own commands, from the shipped models and the real
# datasets (DIGITKIT_DATA, default ../shared/datasets). About a minute on 2 CPU cores. Run from anywhere:
#   docs/images/make.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export DIGITKIT_DATA=${DIGITKIT_DATA:-../shared/datasets}
out=docs/images
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# the shipped models on their test sets: confusion matrices and the curves stored in the checkpoints
digitkit evaluate mnist --plot $out/mnist-confusion.png --curves $out/mnist-curves.png > /dev/null
digitkit evaluate fsdd --plot $out/fsdd-confusion.png --curves $out/fsdd-curves.png > /dev/null

# what the network sees: the 28x28 inputs `predict --save-input` writes for the example digits and a number
python - "$work/number.png" <<'PY'
import sys
from PIL import Image, ImageDraw, ImageFont
page = Image.new("RGB", (360, 150), (236, 232, 220))  # off-white paper, a blue pen
font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 96)
ImageDraw.Draw(page).text((30, 20), "4071", fill=(30, 50, 140), font=font)
page.save(sys.argv[1])
PY
digitkit predict --save-input "$work/seen" docs/examples/*.png "$work/number.png" > /dev/null
python - "$work" "$out/model-inputs.png" <<'PY'
import sys
from pathlib import Path
from PIL import Image, ImageDraw
seen, scale = Path(sys.argv[1]) / "seen", 3
rows = [sorted(seen.glob("digit-*.png")), sorted(seen.glob("number-*.png"))]
sources = [sorted(Path("docs/examples").glob("digit-*.png")), [Path(sys.argv[1]) / "number.png"]]
cell = 28 * scale + 8
sheet = Image.new("L", (cell * 10 + 8, 2 * (cell + 60) + 8), 255)
draw = ImageDraw.Draw(sheet)
draw.text((8, 4), "docs/examples/digit-0..9.png as the model sees them (28x28):", fill=0)
draw.text((8, cell + 64), "a photo-like number, read as four digits:", fill=0)
for r, (row, top) in enumerate(zip(rows, (20, cell + 80))):
    for i, path in enumerate(row):
        sheet.paste(Image.open(path).convert("L").resize((28 * scale, 28 * scale), Image.NEAREST), (8 + i * cell, top))
number = Image.open(Path(sys.argv[1]) / "number.png").convert("L")
number.thumbnail((cell * 5, cell))
sheet.paste(number, (8 + 5 * cell, cell + 80))
sheet.save(sys.argv[2])
PY

# a transcription with its word times: four FSDD test recordings (never trained on) joined into one string
python - "$work/string.wav" <<'PY'
import sys
import numpy as np, soundfile as sf
import os
root = os.path.join(os.environ["DIGITKIT_DATA"], "fsdd", "recordings")
parts = []
for name in ("4_jackson_0", "0_nicolas_1", "7_theo_2", "1_yweweler_3", "9_lucas_4"):
    clip, rate = sf.read(os.path.join(root, name + ".wav"), dtype="float32")
    parts += [clip / np.abs(clip).max() * 0.5, np.zeros(int(0.08 * rate), np.float32)]
sf.write(sys.argv[1], np.concatenate(parts), rate)
PY
digitkit transcribe --plot "$work/plots" "$work/string.wav" > /dev/null
cp "$work/plots/string.png" $out/transcript.png
echo "wrote $(ls $out/*.png | wc -l) pictures in $out/" >&2

# the web page, drawn on, given a photo and spoken to in headless Chromium: the browser test takes the screenshots
DIGITKIT_SCREENSHOTS=$out python -m pytest -q -p no:cacheprovider tests/test_serve.py -k page > /dev/null
echo "wrote the serve-*.png screenshots in $out/" >&2
