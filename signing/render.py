"""The agreement PDF: A4, deterministic, CJK text embedded as font subsets, QR code on every page.

Layout contract (what :mod:`signing.sign` relies on):

* Every page carries, top right, a QR code of ``verify_url`` with the short code printed under it,
  and a page number "第 i 页 共 n 页" at the bottom.
* The body (title, agreement number, student, employer, terms, the six clauses, remarks) flows
  over as many pages as needed; long remarks wrap and continue on the next page.
* The bottom band of every page (below ``BODY_BOTTOM``) is reserved. On the **last** page it holds
  the three signature areas whose rectangles are :data:`SIGNATURE_BOXES` – page index ``-1``
  (= last page) and PDF coordinates in points. On other pages the band says "（续下页）".
* Output is byte-for-byte reproducible: reportlab invariant mode, fixed metadata, no clock.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from functools import partial
from typing import Any, Literal

import qrcode
from PIL import Image
from reportlab.lib.colors import Color, black
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import BaseDocTemplate, Frame, PageTemplate, Paragraph, Spacer, Table, TableStyle

from . import texts
from .errors import RenderError
from .fonts import FontConfig, FontSet, load_fonts

__all__ = [
    "BODY_BOTTOM",
    "SIGNATURE_BOXES",
    "AgreementData",
    "Party",
    "qr_matrix",
    "render_agreement",
]

Party = Literal["student", "school", "employer"]

PAGE_W, PAGE_H = A4
MARGIN_X = 48.0
BODY_TOP = PAGE_H - 100.0
BODY_BOTTOM = 205.0
"""Lowest y of the flowing body; the band below is reserved for the signature areas."""

_BOX = 124  # 4.4 cm square: a 4.0-4.2 cm seal fits with a margin
_BOX_Y = 42
SIGNATURE_BOXES: dict[Party, tuple[int, int, int, int, int]] = {
    "student": (-1, 62, _BOX_Y, 62 + _BOX, _BOX_Y + _BOX),
    "employer": (-1, 236, _BOX_Y, 236 + _BOX, _BOX_Y + _BOX),
    "school": (-1, 410, _BOX_Y, 410 + _BOX, _BOX_Y + _BOX),
}
"""Party -> (page index, x1, y1, x2, y2) in PDF points; page index -1 is the last page."""

QR_SIZE = 64.0
QR_BOX_SIZE = 4  # image pixels per QR module (lossless extraction = exact decoding in tests)


@dataclass(frozen=True)
class AgreementData:
    """Everything printed on an agreement; plain values, already formatted for display.

    Code-table values (unit nature, education level, training mode, affiliation) are passed as the
    text to print, e.g. ``"31 国有企业"``. Money is in integer fen. ``None`` prints as "—".
    """

    agreement_no: str
    """Graduation year + school code + education level + serial."""
    # student
    student_name: str
    student_gender: str
    student_id_number: str
    student_number: str
    school_name: str
    school_branch: str | None
    college: str
    major: str
    education_level: str
    training_mode: str
    origin: str
    """Place of origin (生源地)."""
    graduation_year: int
    student_phone: str
    # employer
    employer_name: str
    employer_credit_code: str
    employer_nature: str
    employer_industry: str
    employer_affiliation: str
    employer_address: str
    employer_postcode: str
    employer_contact: str
    employer_phone: str
    employer_email: str
    archive_unit: str | None
    archive_address: str | None
    archive_postcode: str | None
    accepts_hukou: bool
    # terms
    position: str
    work_location: str
    monthly_salary_fen: int
    probation_months: int | None
    """Probation in months (≤ 6); leave ``None`` when ``internship_period`` is used instead."""
    internship_period: str | None
    contract_years: int | None
    """Contract length in years; ``None`` prints as "—"."""
    liquidated_damages_fen: int | None
    remarks: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Field name -> value (handy for hashing or logging without the ID number)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _yuan(fen: int | None) -> str:
    if fen is None:
        return "—"
    return f"{fen // 100}.{fen % 100:02d} 元" if fen % 100 else f"{fen // 100} 元"


def _txt(value: object) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "是" if value else "否"
    return str(value)


def qr_matrix(url: str) -> list[list[bool]]:
    """The QR module matrix drawn for ``url`` (no quiet zone) – used by tests to decode exactly."""
    # a fixed mask pattern skips qrcode's mask search (~25 ms) and keeps the output deterministic
    qr = qrcode.QRCode(border=0, error_correction=qrcode.constants.ERROR_CORRECT_M, mask_pattern=0)
    qr.add_data(url)
    qr.make(fit=True)
    return [list(row) for row in qr.get_matrix()]


def _qr_image(url: str) -> Image.Image:
    matrix = qr_matrix(url)
    n = len(matrix)
    img = Image.new("L", (n, n), 255)
    img.putdata([0 if cell else 255 for row in matrix for cell in row])
    return img.resize((n * QR_BOX_SIZE, n * QR_BOX_SIZE), Image.Resampling.NEAREST)


class _Styles:
    def __init__(self, fonts: FontSet) -> None:
        base = dict(fontName=fonts.main, wordWrap="CJK")
        self.title = ParagraphStyle("title", fontSize=16, leading=20, alignment=1, **base)
        self.sub = ParagraphStyle("sub", fontSize=9, leading=12, alignment=1, **base)
        self.h = ParagraphStyle("h", fontSize=10.5, leading=14, spaceBefore=5, spaceAfter=2, **base)
        self.cell = ParagraphStyle("cell", fontSize=8.5, leading=10.5, **base)
        self.label = ParagraphStyle("label", fontSize=8.5, leading=10.5, textColor=Color(0.25, 0.25, 0.25), **base)
        self.body = ParagraphStyle("body", fontSize=8.5, leading=11.5, firstLineIndent=0, **base)


def _cell(text: str, width: float, style: ParagraphStyle, fonts: FontSet) -> str | Paragraph:
    """Plain string when it fits in the main font (fast path), else a wrapping Paragraph."""
    if fonts.string_width(text, style.fontSize) < width - 5 and all(fonts.font_for(ch) == fonts.main for ch in text):
        return text
    return Paragraph(fonts.markup(text), style)


def _grid(rows: Sequence[tuple[str, object, str, object]], st: _Styles, fonts: FontSet) -> Table:
    width = PAGE_W - 2 * MARGIN_X
    cols = [width * 0.15, width * 0.35, width * 0.15, width * 0.35]
    data = [
        [a, _cell(_txt(b), cols[1], st.cell, fonts), c, _cell(_txt(d), cols[3], st.cell, fonts)] for a, b, c, d in rows
    ]
    table = Table(data, colWidths=cols)
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), fonts.main, st.cell.fontSize, st.cell.leading),
                ("TEXTCOLOR", (0, 0), (0, -1), Color(0.25, 0.25, 0.25)),
                ("TEXTCOLOR", (2, 0), (2, -1), Color(0.25, 0.25, 0.25)),
                ("GRID", (0, 0), (-1, -1), 0.4, black),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
                ("BACKGROUND", (0, 0), (0, -1), Color(0.95, 0.95, 0.95)),
                ("BACKGROUND", (2, 0), (2, -1), Color(0.95, 0.95, 0.95)),
            ]
        )
    )
    return table


def _story(d: AgreementData, fonts: FontSet) -> list[Any]:
    st = _Styles(fonts)
    m = fonts.markup
    terms_probation = (
        f"见习期 {d.internship_period}" if d.internship_period else f"试用期 {_txt(d.probation_months)} 个月"
    )
    story: list[Any] = [
        Paragraph(m(texts.AGREEMENT_TITLE), st.title),
        Paragraph(m(f"协议编号：{d.agreement_no}"), st.sub),
        Paragraph(m(texts.AGREEMENT_INTRO), st.body),
        Paragraph(m("一、学生（甲方）"), st.h),
        _grid(
            [
                ("姓名", d.student_name, "性别", d.student_gender),
                ("身份证号", d.student_id_number, "学号", d.student_number),
                ("学校", d.school_name, "校区/分校", d.school_branch),
                ("院系", d.college, "专业", d.major),
                ("学历", d.education_level, "培养方式", d.training_mode),
                ("生源地", d.origin, "毕业年份", d.graduation_year),
                ("联系电话", d.student_phone, "", ""),
            ],
            st,
            fonts,
        ),
        Paragraph(m("二、用人单位（乙方）"), st.h),
        _grid(
            [
                ("单位名称", d.employer_name, "统一社会信用代码", d.employer_credit_code),
                ("单位性质", d.employer_nature, "所属行业", d.employer_industry),
                ("隶属", d.employer_affiliation, "邮政编码", d.employer_postcode),
                ("单位地址", d.employer_address, "联系人", d.employer_contact),
                ("联系电话", d.employer_phone, "电子邮箱", d.employer_email),
                ("档案转寄单位", d.archive_unit, "档案转寄邮编", d.archive_postcode),
                ("档案转寄地址", d.archive_address, "是否接收户口", d.accepts_hukou),
            ],
            st,
            fonts,
        ),
        Paragraph(m("三、聘用条件"), st.h),
        _grid(
            [
                ("工作岗位", d.position, "工作地点", d.work_location),
                ("月薪（税前）", _yuan(d.monthly_salary_fen), "试用/见习", terms_probation),
                (
                    "劳动合同期限",
                    f"{d.contract_years} 年" if d.contract_years else None,
                    "违约金",
                    _yuan(d.liquidated_damages_fen),
                ),
            ],
            st,
            fonts,
        ),
        Paragraph(m("四、协议条款"), st.h),
    ]
    story += [Paragraph(m(f"{i}. {c}"), st.body) for i, c in enumerate(texts.CLAUSES, 1)]
    story.append(Paragraph(m("五、备注（其他约定，为本协议组成部分）"), st.h))
    for para in (d.remarks or "无").split("\n"):
        story.append(Paragraph(m(para) or "&nbsp;", st.body))
    story.append(Spacer(1, 4))
    return story


class _AgreementCanvas(Canvas):  # type: ignore[misc]  # reportlab is untyped
    """Keeps every page until save() so that page decorations know the page count."""

    def __init__(self, *args: Any, decorate: Callable[[Canvas, int, int], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._decorate = decorate
        self._pages: list[dict[str, Any]] = []

    def showPage(self) -> None:  # noqa: N802 – reportlab API
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        for index, state in enumerate(self._pages):
            self.__dict__.update(state)
            self._decorate(self, index, total)
            super().showPage()
        super().save()


def _decorate(
    c: Canvas,
    index: int,
    total: int,
    *,
    fonts: FontSet,
    qr: ImageReader,
    url: str,
    short_code: str,
    agreement_no: str,
) -> None:
    c.saveState()
    qx, qy = PAGE_W - MARGIN_X - QR_SIZE, PAGE_H - 30 - QR_SIZE
    c.drawImage(qr, qx, qy, QR_SIZE, QR_SIZE)
    _text(c, fonts, 7.5, qx + QR_SIZE / 2, qy - 10, f"核验码 {short_code}", center=True)
    _text(c, fonts, 7, MARGIN_X, PAGE_H - 34, f"协议编号 {agreement_no}")
    _text(c, fonts, 7, MARGIN_X, PAGE_H - 44, texts.VERIFY_HINT)
    _text(c, fonts, 6.5, MARGIN_X, PAGE_H - 53, url)
    _text(c, fonts, 8, PAGE_W / 2, 16, f"第 {index + 1} 页  共 {total} 页", center=True)
    c.setLineWidth(0.4)
    c.line(MARGIN_X, BODY_BOTTOM - 6, PAGE_W - MARGIN_X, BODY_BOTTOM - 6)
    if index == total - 1:
        _signature_band(c, fonts)
    else:
        _text(c, fonts, 9, PAGE_W / 2, BODY_BOTTOM - 22, "（续下页）", center=True)
    c.restoreState()


def _signature_band(c: Canvas, fonts: FontSet) -> None:
    _text(c, fonts, 8.5, MARGIN_X, BODY_BOTTOM - 18, texts.SIGNATURE_NOTE)
    c.setDash(2, 2)
    c.setStrokeColor(Color(0.55, 0.55, 0.55))
    for party, (_, x1, y1, x2, y2) in SIGNATURE_BOXES.items():
        c.rect(x1, y1, x2 - x1, y2 - y1, stroke=1, fill=0)
        _text(c, fonts, 9, (x1 + x2) / 2, y2 + 6, texts.PARTY_LABELS[party], center=True)
        _text(c, fonts, 7.5, (x1 + x2) / 2, y1 - 10, texts.PARTY_HINTS[party], center=True)


def _text(c: Canvas, fonts: FontSet, size: float, x: float, y: float, text: str, *, center: bool = False) -> None:
    if center:
        x -= fonts.string_width(text, size) / 2
    for name, chunk in fonts.runs(text):
        c.setFont(name, size)
        c.drawString(x, y, chunk)
        x += c.stringWidth(chunk, name, size)


def render_agreement(
    data: AgreementData,
    verify_url: str,
    short_code: str,
    *,
    fonts: FontConfig | None = None,
) -> bytes:
    """Render the agreement as a deterministic A4 PDF (same input -> identical bytes).

    ``verify_url`` goes into the QR code on every page and ``short_code`` is printed under it.
    Signature areas: :data:`SIGNATURE_BOXES` on the last page. Raises :class:`FontNotFound`
    if a configured font is missing.
    """
    fontset = load_fonts(fonts)
    buf = io.BytesIO()
    decorate = partial(
        _decorate,
        fonts=fontset,
        qr=ImageReader(_qr_image(verify_url)),
        url=verify_url,
        short_code=short_code,
        agreement_no=data.agreement_no,
    )
    doc = BaseDocTemplate(
        buf,
        pagesize=A4,
        invariant=1,
        pageCompression=1,
        initialFontName=fontset.main,
        title=f"{texts.AGREEMENT_TITLE} {data.agreement_no}",
        author=texts.PRODUCER,
        creator=texts.PRODUCER,
        producer=texts.PRODUCER,
        subject=data.agreement_no,
        leftMargin=MARGIN_X,
        rightMargin=MARGIN_X,
        topMargin=PAGE_H - BODY_TOP,
        bottomMargin=BODY_BOTTOM,
    )
    frame = Frame(
        MARGIN_X,
        BODY_BOTTOM,
        PAGE_W - 2 * MARGIN_X,
        BODY_TOP - BODY_BOTTOM,
        id="body",
        leftPadding=0,
        rightPadding=0,
        topPadding=0,
        bottomPadding=0,
    )
    doc.addPageTemplates([PageTemplate(id="page", frames=[frame])])
    try:
        doc.build(_story(data, fontset), canvasmaker=partial(_AgreementCanvas, decorate=decorate))
    except Exception as exc:  # reportlab LayoutError etc. – surface as our typed error
        raise RenderError(f"cannot lay out agreement {data.agreement_no}: {exc}") from exc
    return buf.getvalue()
