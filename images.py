"""Demo and test pictures drawn with Pillow: a round red seal and a handwritten-looking signature.

Real seals come from the seal maker and uploads; these exist so the demo and the tests sign with
real transparent PNGs without shipping binary files.
"""
from __future__ import annotations

import io
import math
import random

from PIL import Image, ImageDraw, ImageFont

FONT_CANDIDATES = ["/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
                   "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"]


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in FONT_CANDIDATES:
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default()


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def seal_png(title: str, size: int = 240) -> bytes:
    """A red round official seal (ring, five-pointed star, the unit's name along the ring), transparent."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    red = (214, 28, 28, 255)
    c, r = size / 2, size / 2 - 6
    d.ellipse([c - r, c - r, c + r, c + r], outline=red, width=max(size // 30, 4))
    star_r, pts = size * 0.16, []
    for i in range(10):
        rad = star_r if i % 2 == 0 else star_r * 0.38
        ang = -math.pi / 2 + i * math.pi / 5
        pts.append((c + rad * math.cos(ang), c + rad * math.sin(ang)))
    d.polygon(pts, fill=red)
    text = title[:14]
    font = _font(max(size // 9, 10))
    span = math.radians(240)
    for i, ch in enumerate(text):
        ang = math.radians(-210) + (span * (i + 0.5) / max(len(text), 1))
        x, y = c + (r * 0.74) * math.cos(ang), c + (r * 0.74) * math.sin(ang)
        glyph = Image.new("RGBA", (size // 7, size // 7), (0, 0, 0, 0))
        ImageDraw.Draw(glyph).text((size // 14, size // 14), ch, font=font, fill=red, anchor="mm")
        glyph = glyph.rotate(-math.degrees(ang) - 90, resample=Image.BICUBIC)
        img.alpha_composite(glyph, (int(x - glyph.width / 2), int(y - glyph.height / 2)))
    return _png(img)


def signature_png(seed: str, width: int = 360, height: int = 140) -> bytes:
    """A scribble that looks handwritten (deterministic for a seed), black on transparent."""
    rnd = random.Random(seed)
    img = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    x, y = 20.0, height / 2
    for _ in range(6):
        pts = []
        for _ in range(8):
            x = min(x + rnd.uniform(4, 14), width - 10)
            y = min(max(y + rnd.uniform(-22, 22), 12), height - 12)
            pts.append((x, y))
        d.line(pts, fill=(20, 20, 20, 255), width=5, joint="curve")
        x = min(x + rnd.uniform(6, 16), width - 10)
    return _png(img)
