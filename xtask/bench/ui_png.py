#!/usr/bin/python3
"""Renders a tmux capture (`capture-pane -e -p`, ANSI colours kept) as a PNG: pyte plays the
escape sequences onto a screen of the capture's size, Pillow draws each cell in DejaVu Sans
Mono. Debian: apt-get install python3-pyte python3-pil fonts-dejavu-core.

usage: ui_png.py CAPTURE.ansi WIDTH HEIGHT OUT.png
"""
import sys

import pyte
from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"
# A dark theme: the terminal's default colours and its eight named ones.
DEFAULT_FG, DEFAULT_BG = (220, 220, 220), (30, 30, 30)
NAMED = {"black": (0, 0, 0), "red": (229, 83, 75), "green": (88, 200, 110),
         "brown": (229, 192, 75), "yellow": (229, 192, 75), "blue": (97, 150, 229),
         "magenta": (198, 120, 221), "cyan": (86, 182, 194), "white": (220, 220, 220)}


def colour(name, default):
    if name == "default":
        return default
    if name in NAMED:
        return NAMED[name]
    try:
        return tuple(int(name[i:i + 2], 16) for i in (0, 2, 4))
    except ValueError:
        return default


def main(capture, width, height, out):
    screen = pyte.Screen(width, height)
    stream = pyte.ByteStream(screen)
    with open(capture, "rb") as f:
        stream.feed(f.read().rstrip(b"\n").replace(b"\n", b"\r\n"))
    size = 16
    font, bold = ImageFont.truetype(FONT, size), ImageFont.truetype(BOLD, size)
    cell_w, cell_h = round(font.getlength("M")), size + 4
    image = Image.new("RGB", (width * cell_w + 16, height * cell_h + 16), DEFAULT_BG)
    draw = ImageDraw.Draw(image)
    for y in range(height):
        for x in range(width):
            char = screen.buffer[y][x]
            fg, bg = colour(char.fg, DEFAULT_FG), colour(char.bg, DEFAULT_BG)
            if char.reverse:
                fg, bg = bg, fg
            left, top = 8 + x * cell_w, 8 + y * cell_h
            draw.rectangle([left, top, left + cell_w, top + cell_h], fill=bg)
            if char.data.strip():
                draw.text((left, top + 1), char.data, font=bold if char.bold else font, fill=fg)
    image.save(out)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
