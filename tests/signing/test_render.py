"""The rendered agreement: deterministic, CJK text (incl. rare names) embedded, QR on every page."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from signing import SIGNATURE_BOXES, FontConfig, FontNotFound, FontSpec, qr_matrix, render_agreement
from signing.render import QR_BOX_SIZE

from .conftest import run_tool
from .helpers import RARE_NAME, SHORT_CODE, VERIFY_URL, make_agreement

LONG_REMARKS = "\n".join(
    f"第{i}条 甲方入职后参加为期两周的岗前培训，培训费用由乙方承担，培训期间工资照发。" for i in range(1, 61)
)


def test_same_input_gives_identical_bytes() -> None:
    data = make_agreement()
    assert render_agreement(data, VERIFY_URL, SHORT_CODE) == render_agreement(data, VERIFY_URL, SHORT_CODE)


def test_different_input_gives_different_bytes() -> None:
    assert render_agreement(make_agreement(), VERIFY_URL, SHORT_CODE) != render_agreement(
        make_agreement(position="测试工程师"), VERIFY_URL, SHORT_CODE
    )


def test_text_extracts_with_rare_characters_and_short_code(write_pdf: Callable[..., Path]) -> None:
    path = write_pdf(render_agreement(make_agreement(), VERIFY_URL, SHORT_CODE))
    text = run_tool("pdftotext", "-enc", "UTF-8", str(path), "-").stdout
    assert RARE_NAME in text
    assert "𠇔" in text and "䶮" in text
    assert SHORT_CODE in text
    for needle in (
        "91360100MA35L4XK0Q",
        "软件工程师",
        "8500 元",
        "3000 元",
        "前湖校区",
        "南昌市人才服务中心",
        "2026104033100042",
        "备注",
    ):
        assert needle in text, needle


def test_all_fonts_are_embedded_subsets(write_pdf: Callable[..., Path]) -> None:
    path = write_pdf(render_agreement(make_agreement(), VERIFY_URL, SHORT_CODE))
    out = run_tool("pdffonts", str(path)).stdout.splitlines()[2:]
    assert out, "no fonts listed"
    for line in out:
        cols = line.split()
        emb, sub = cols[-5], cols[-4]
        assert (emb, sub) == ("yes", "yes"), line
    assert any("HanaMin" in line for line in out), "fallback font for 𠇔 not used"


def test_first_page_renders_non_blank(write_pdf: Callable[..., Path], tmp_path: Path) -> None:
    path = write_pdf(render_agreement(make_agreement(), VERIFY_URL, SHORT_CODE))
    run_tool("pdftoppm", "-r", "40", "-f", "1", "-l", "1", "-png", str(path), str(tmp_path / "p")).check_returncode()
    img = Image.open(next(tmp_path.glob("p*.png"))).convert("L")
    dark = sum(img.histogram()[:128])
    assert dark > img.width * img.height * 0.01


def _decode_qr_images(path: Path, outdir: Path) -> dict[int, list[list[bool]]]:
    """Extract the QR images losslessly per page and read their modules back."""
    listing = run_tool("pdfimages", "-list", str(path)).stdout.splitlines()[2:]
    run_tool("pdfimages", "-png", "-p", str(path), str(outdir / "img")).check_returncode()
    found: dict[int, list[list[bool]]] = {}
    for file in sorted(outdir.glob("img-*.png")):
        page = int(re.match(r"img-(\d+)-", file.name).group(1))  # type: ignore[union-attr]
        img = Image.open(file).convert("L")
        if img.width != img.height or img.width % QR_BOX_SIZE:
            continue
        n = img.width // QR_BOX_SIZE
        found[page] = [
            [img.getpixel((x * QR_BOX_SIZE + 1, y * QR_BOX_SIZE + 1)) < 128 for x in range(n)] for y in range(n)
        ]
    assert listing
    return found


def test_qr_code_on_every_page_encodes_verify_url(write_pdf: Callable[..., Path], tmp_path: Path) -> None:
    path = write_pdf(render_agreement(make_agreement(remarks=LONG_REMARKS), VERIFY_URL, SHORT_CODE))
    pages = int(re.search(r"Pages:\s+(\d+)", run_tool("pdfinfo", str(path)).stdout).group(1))  # type: ignore[union-attr]
    assert pages >= 2, "long remarks should flow onto a second page"
    text_pages = run_tool("pdftotext", str(path), "-").stdout.split("\f")
    assert all(SHORT_CODE in t for t in text_pages[:pages])
    decoded = _decode_qr_images(path, tmp_path)
    assert sorted(decoded) == list(range(1, pages + 1))
    assert all(matrix == qr_matrix(VERIFY_URL) for matrix in decoded.values())


def test_long_remarks_wrap_and_keep_signature_boxes_on_last_page(write_pdf: Callable[..., Path]) -> None:
    path = write_pdf(render_agreement(make_agreement(remarks=LONG_REMARKS), VERIFY_URL, SHORT_CODE))
    pages = run_tool("pdftotext", "-layout", str(path), "-").stdout.split("\f")
    assert "第60条" in "".join(pages)
    last = [p for p in pages if p.strip()][-1]
    assert "甲方（毕业生）签名" in last and "学校（就业部门）盖章" in last
    assert all("甲方（毕业生）签名" not in p for p in pages[:-2])
    assert all(box[0] == -1 for box in SIGNATURE_BOXES.values())


def test_missing_font_names_the_debian_package(tmp_path: Path) -> None:
    config = FontConfig(main=FontSpec(tmp_path / "nope.ttc", "fonts-wqy-zenhei"))
    with pytest.raises(FontNotFound, match="fonts-wqy-zenhei"):
        render_agreement(make_agreement(), VERIFY_URL, SHORT_CODE, fonts=config)
