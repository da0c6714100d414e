"""CJK fonts for the rendered PDFs: one main TrueType font plus per-character fallbacks.

reportlab embeds (and subsets) only TrueType-outline fonts, so the defaults are Debian's
``fonts-wqy-zenhei`` (WenQuanYi Zen Hei, main) and ``fonts-hanazono`` (HanaMinA/HanaMinB, covering
CJK Extension A and B for rare name characters such as 𠇔). A character missing from the main font is
drawn with the first fallback font that has it. Fonts are parsed and registered once per process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.pdfbase import pdfmetrics, ttfonts
from reportlab.pdfbase.ttfonts import TTFont

from .errors import FontNotFound

__all__ = ["FontConfig", "FontSet", "load_fonts"]


@dataclass(frozen=True)
class FontSpec:
    """One font file: ``path``, the TTC ``subfont_index`` and the Debian package that ships it."""

    path: Path
    package: str
    subfont_index: int = 0


@dataclass(frozen=True)
class FontConfig:
    """Where the renderer finds its fonts (defaults: Debian paths)."""

    main: FontSpec = FontSpec(Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"), "fonts-wqy-zenhei")
    """Main font for all text (must have TrueType outlines: .ttf or .ttc)."""

    fallbacks: tuple[FontSpec, ...] = field(
        default_factory=lambda: (
            FontSpec(Path("/usr/share/fonts/truetype/hanazono/HanaMinA.ttf"), "fonts-hanazono"),
            FontSpec(Path("/usr/share/fonts/truetype/hanazono/HanaMinB.ttf"), "fonts-hanazono"),
        )
    )
    """Tried in order, per character, for glyphs the main font lacks (CJK Ext A/B)."""


@dataclass(frozen=True)
class FontSet:
    """Registered reportlab font names and their character coverage."""

    main: str
    fallbacks: tuple[tuple[str, frozenset[int]], ...]
    main_coverage: frozenset[int]

    def font_for(self, ch: str) -> str:
        """The registered font name that draws ``ch`` (main font if nobody has it)."""
        cp = ord(ch)
        if cp in self.main_coverage or cp < 0x2E80:
            return self.main
        for name, coverage in self.fallbacks:
            if cp in coverage:
                return name
        return self.main

    def runs(self, text: str) -> list[tuple[str, str]]:
        """Split ``text`` into (font name, substring) runs."""
        out: list[tuple[str, str]] = []
        for ch in text:
            name = self.font_for(ch)
            if out and out[-1][0] == name:
                out[-1] = (name, out[-1][1] + ch)
            else:
                out.append((name, ch))
        return out

    def markup(self, text: str) -> str:
        """Escape ``text`` for a reportlab Paragraph, tagging fallback-font runs and keeping line breaks."""
        parts = []
        for name, chunk in self.runs(text):
            esc = escape(chunk).replace("\n", "<br/>")
            parts.append(esc if name == self.main else f'<font name="{name}">{esc}</font>')
        return "".join(parts)

    def string_width(self, text: str, size: float) -> float:
        """Width of ``text`` in points at ``size``, honouring the fallback runs."""
        return float(sum(pdfmetrics.stringWidth(chunk, name, size) for name, chunk in self.runs(text)))


_lock = threading.Lock()
_cache: dict[FontConfig, FontSet] = {}


def _register(spec: FontSpec, alias: str) -> TTFont:
    if not spec.path.is_file():
        raise FontNotFound(
            f"font file {spec.path} not found: install the Debian package '{spec.package}' "
            f"(apt-get install {spec.package}) or point FontConfig at another TrueType font"
        )
    try:
        font = TTFont(alias, str(spec.path), subfontIndex=spec.subfont_index)
    except Exception as exc:  # reportlab raises TTFError or plain errors for CFF/OpenType fonts
        raise FontNotFound(f"{spec.path} cannot be embedded (TrueType outlines required): {exc}") from exc
    pdfmetrics.registerFont(font)
    return font


def load_fonts(config: FontConfig | None = None) -> FontSet:
    """Parse and register the fonts of ``config`` once per process; return their names and coverage."""
    config = config or FontConfig()
    with _lock:
        cached = _cache.get(config)
        if cached is not None:
            return cached
        suffix = len(_cache)
        main = _register(config.main, f"TripactMain{suffix}")
        fallbacks = []
        for i, spec in enumerate(config.fallbacks):
            fb = _register(spec, f"TripactFallback{suffix}_{i}")
            fallbacks.append((fb.fontName, frozenset(fb.face.charToGlyph)))
        fontset = FontSet(main.fontName, tuple(fallbacks), frozenset(main.face.charToGlyph))
        _cache[config] = fontset
        return fontset


def _utf16_hex(cp: int) -> str:
    return chr(cp).encode("utf-16-be").hex().upper()


def _to_unicode_cmap(fontname: str, subset: list[int]) -> str:
    """reportlab's ToUnicode CMap with astral code points written as UTF-16 surrogate pairs.

    reportlab 4/5 writes ``<%04X>``, so U+201D4 (𠇔) comes out as five hex digits and text
    extraction / search / copy-paste yields the wrong character; this replacement fixes that.
    """
    lines = [
        "/CIDInit /ProcSet findresource begin",
        "12 dict begin",
        "begincmap",
        "/CIDSystemInfo",
        f"<< /Registry ({fontname})",
        f"/Ordering ({fontname})",
        "/Supplement 0",
        ">> def",
        f"/CMapName /{fontname} def",
        "/CMapType 2 def",
        "1 begincodespacerange",
        "<00> <%02X>" % (len(subset) - 1),
        "endcodespacerange",
        f"{len(subset)} beginbfchar",
    ]
    lines += [f"<{i:02X}> <{_utf16_hex(v)}>" for i, v in enumerate(subset)]
    lines += ["endbfchar", "endcmap", "CMapName currentdict /CMap defineresource pop", "end", "end"]
    return "\n".join(lines)


_ORIGINAL_GET_TABLE = ttfonts.TTFontFile.get_table
_ORIGINAL_SET_USHORT = ttfonts._set_ushort


def _get_table(self: ttfonts.TTFontFile, tag: str) -> bytes | memoryview:
    """``get_table`` without copying the ~10 MB 'glyf' table for every subset (a zero-copy view).

    reportlab's ``makeSubset`` only slices the glyph table and joins the pieces, so a memoryview
    gives the same bytes; ``_set_ushort`` (used on composite glyphs) gets real bytes below.
    """
    if tag == "glyf":
        pos, length = self.get_table_pos(tag)
        return memoryview(self._ttf_data)[pos : pos + length]
    table: bytes = _ORIGINAL_GET_TABLE(self, tag)
    return table


def _set_ushort(stream: bytes | memoryview, offset: int, value: int) -> bytes:
    result: bytes = _ORIGINAL_SET_USHORT(bytes(stream), offset, value)
    return result


ttfonts.makeToUnicodeCMap = _to_unicode_cmap  # bug fix, see docstring
ttfonts.TTFontFile.get_table = _get_table  # speed-up: ~3 ms per subset, same bytes
ttfonts._set_ushort = _set_ushort
