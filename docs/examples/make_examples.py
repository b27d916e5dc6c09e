"""Draws the example digits used by the README's first command (typeset with the DejaVu fonts, not dataset images).

    python docs/examples/make_examples.py
"""

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONTS = "/usr/share/fonts/truetype/dejavu/"
STYLES = [  # (font, ink, paper, size, angle)
    ("DejaVuSans.ttf", 20, 245, (160, 200), -6),
    ("DejaVuSerif.ttf", 40, 230, (200, 200), 4),
    ("DejaVuSans-Bold.ttf", 250, 10, (120, 160), 0),
    ("DejaVuSansMono.ttf", 30, 250, (300, 180), 8),
    ("DejaVuSerif-Bold.ttf", 60, 220, (140, 140), -3),
]


def main() -> None:
    here = Path(__file__).resolve().parent
    for digit in range(10):
        font_name, ink, paper, size, angle = STYLES[digit % len(STYLES)]
        font = ImageFont.truetype(FONTS + font_name, int(min(size) * 0.6))
        img = Image.new("L", size, paper)
        ImageDraw.Draw(img).text((size[0] // 2, size[1] // 2), str(digit), fill=ink, font=font, anchor="mm")
        img = img.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=paper)
        img.save(here / f"digit-{digit}.png")


if __name__ == "__main__":
    main()
