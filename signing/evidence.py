"""The evidence report (证据报告): audit trail, document hashes, certificates and timestamps as a PDF.

The caller (workflow) gathers the rows from the database; this module only lays them out.
Sign the result with :meth:`signing.sign.AgreementSigner.sign_evidence` so that the platform vouches
for it. Deterministic like the agreement: same data -> same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from reportlab.lib.colors import Color, black
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from . import texts
from .fonts import FontConfig, FontSet, load_fonts

__all__ = [
    "AuditEventRow",
    "CertificateRow",
    "EvidenceData",
    "RevisionRow",
    "TimestampRow",
    "render_evidence",
]


@dataclass(frozen=True)
class AuditEventRow:
    """One audit event of the hash chain (times already formatted, Asia/Shanghai)."""

    time: str
    actor: str
    action: str
    details: str
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class RevisionRow:
    """The document after one step: what happened and the sha256 of the file."""

    label: str
    sha256: str
    time: str = ""


@dataclass(frozen=True)
class CertificateRow:
    """A certificate used in the signing (event certificate, CA, TSA)."""

    subject: str
    serial: str
    not_before: str
    not_after: str
    role: str = ""


@dataclass(frozen=True)
class TimestampRow:
    """A timestamp: what it covers, who issued it, when; ``fallback`` if the local TSA stood in."""

    covers: str
    authority: str
    time: str
    fallback: bool = False


@dataclass(frozen=True)
class EvidenceData:
    """Everything the evidence report lists."""

    agreement_no: str
    generated_at: str
    events: Sequence[AuditEventRow]
    revisions: Sequence[RevisionRow]
    certificates: Sequence[CertificateRow]
    timestamps: Sequence[TimestampRow]
    notes: Sequence[str] = ()


def _table(
    header: list[str], rows: list[list[str]], widths: list[float], fonts: FontSet, style: ParagraphStyle
) -> Table:
    data = [[Paragraph(fonts.markup(h), style) for h in header]]
    data += [[Paragraph(fonts.markup(cell), style) for cell in row] for row in rows]
    table = Table(data, colWidths=widths, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.3, black),
                ("BACKGROUND", (0, 0), (-1, 0), Color(0.92, 0.92, 0.92)),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    return table


def render_evidence(data: EvidenceData, *, fonts: FontConfig | None = None) -> bytes:
    """Render the evidence report as an A4 PDF (unsigned; see ``AgreementSigner.sign_evidence``)."""
    fs = load_fonts(fonts)
    base = dict(fontName=fs.main, wordWrap="CJK")
    title = ParagraphStyle("t", fontSize=15, leading=19, alignment=1, **base)
    head = ParagraphStyle("h", fontSize=10.5, leading=14, spaceBefore=8, spaceAfter=3, **base)
    small = ParagraphStyle("s", fontSize=6.8, leading=8.4, **base)
    body = ParagraphStyle("b", fontSize=8.5, leading=11, **base)
    w = A4[0] - 72
    story = [
        Paragraph(fs.markup(texts.EVIDENCE_TITLE), title),
        Paragraph(fs.markup(f"协议编号：{data.agreement_no}　　生成时间：{data.generated_at}"), body),
        Paragraph("一、审计事件（哈希链）", head),
        _table(
            ["时间", "操作人", "操作", "详情", "前一哈希", "哈希"],
            [[e.time, e.actor, e.action, e.details, e.prev_hash, e.hash] for e in data.events],
            [w * 0.12, w * 0.11, w * 0.11, w * 0.22, w * 0.22, w * 0.22],
            fs,
            small,
        ),
        Paragraph("二、文档版本哈希（SHA-256）", head),
        _table(
            ["版本", "时间", "SHA-256"],
            [[r.label, r.time, r.sha256] for r in data.revisions],
            [w * 0.3, w * 0.2, w * 0.5],
            fs,
            small,
        ),
        Paragraph("三、证书", head),
        _table(
            ["用途", "主体", "序列号", "有效期"],
            [[c.role, c.subject, c.serial, f"{c.not_before} 至 {c.not_after}"] for c in data.certificates],
            [w * 0.12, w * 0.4, w * 0.26, w * 0.22],
            fs,
            small,
        ),
        Paragraph("四、可信时间戳", head),
        _table(
            ["对象", "时间戳机构", "时间", "备注"],
            [
                [
                    t.covers,
                    t.authority,
                    t.time,
                    "外部时间戳不可用，由平台时间戳服务代签" if t.fallback else "",
                ]
                for t in data.timestamps
            ],
            [w * 0.2, w * 0.35, w * 0.2, w * 0.25],
            fs,
            small,
        ),
    ]
    if data.notes:
        story.append(Paragraph("五、说明", head))
        story += [Paragraph(fs.markup(n), body) for n in data.notes]
    story.append(Spacer(1, 6))
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        invariant=1,
        leftMargin=36,
        rightMargin=36,
        topMargin=40,
        bottomMargin=40,
        initialFontName=fs.main,
        title=f"{texts.EVIDENCE_TITLE} {data.agreement_no}",
        author=texts.PRODUCER,
        creator=texts.PRODUCER,
        producer=texts.PRODUCER,
        subject=data.agreement_no,
    )
    doc.build(story)
    return buf.getvalue()
