"""Test data and helpers for the signing tests (real-looking agreement, seal and signature images)."""

from __future__ import annotations

import dataclasses
import io
from typing import Any

from PIL import Image, ImageDraw

from signing import (
    AgreementData,
    AgreementSigner,
    SignerIdentity,
    render_agreement,
)

MASTER_SECRET = "test-master-secret"
VERIFY_URL = "https://sign.example.edu.cn/v/K7Q2M9XA"
SHORT_CODE = "K7Q2-M9XA"
RARE_NAME = "李𠇔䶮"

BASE_AGREEMENT = AgreementData(
    agreement_no="2026104033100042",
    student_name=RARE_NAME,
    student_gender="男",
    student_id_number="360102200001011234",
    student_number="20221234",
    school_name="南昌大学",
    school_branch="前湖校区",
    college="信息工程学院",
    major="计算机科学与技术",
    education_level="31 本科",
    training_mode="1 非定向",
    origin="江西省南昌市",
    graduation_year=2026,
    student_phone="13800138000",
    employer_name="江西赣江科技有限公司",
    employer_credit_code="91360100MA35L4XK0Q",
    employer_nature="39 其他企业",
    employer_industry="信息传输、软件和信息技术服务业",
    employer_affiliation="40 市/地区",
    employer_address="江西省南昌市红谷滩区丰和中大道 1 号",
    employer_postcode="330038",
    employer_contact="王敏",
    employer_phone="0791-88886666",
    employer_email="hr@ganjiang.example.com",
    archive_unit="南昌市人才服务中心",
    archive_address="南昌市东湖区八一大道 2 号",
    archive_postcode="330006",
    accepts_hukou=True,
    position="软件工程师",
    work_location="江西省南昌市",
    monthly_salary_fen=850_000,
    probation_months=3,
    internship_period=None,
    contract_years=3,
    liquidated_damages_fen=300_000,
    remarks="乙方为甲方缴纳五险一金。",
)


def make_agreement(**overrides: Any) -> AgreementData:
    """An agreement with realistic data; override any field."""
    return dataclasses.replace(BASE_AGREEMENT, **overrides)


def png(color: tuple[int, int, int], *, handwriting: bool = False) -> bytes:
    """A transparent PNG: a red round seal with a star, or a black scribble for a signature."""
    img = Image.new("RGBA", (240, 240) if not handwriting else (300, 120), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    if handwriting:
        draw.line([(10, 90), (60, 20), (110, 100), (170, 30), (230, 95), (290, 40)], fill=(*color, 255), width=8)
    else:
        draw.ellipse((6, 6, 234, 234), outline=(*color, 255), width=10)
        draw.polygon(
            [
                (120, 60),
                (135, 105),
                (182, 105),
                (144, 133),
                (158, 178),
                (120, 150),
                (82, 178),
                (96, 133),
                (58, 105),
                (105, 105),
            ],
            fill=(*color, 255),
        )
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


IMAGES = {
    "student": png((20, 20, 20), handwriting=True),
    "school": png((210, 20, 30)),
    "employer": png((200, 10, 20)),
}

IDENTITIES = {
    "student": lambda no: SignerIdentity(RARE_NAME, "3601**********1234", no, reason="同意并签署"),
    "school": lambda no: SignerIdentity("南昌大学", "12360000491014545C", no),
    "employer": lambda no: SignerIdentity("江西赣江科技有限公司", "91360100MA35L4XK0Q", no),
}


def sign_all(signer: AgreementSigner, data: AgreementData, *, finalize: bool = True) -> dict[str, bytes]:
    """Render and sign in order; returns every stage's bytes keyed by stage name."""
    stages = {"rendered": render_agreement(data, VERIFY_URL, SHORT_CODE)}
    pdf = stages["rendered"]
    for party in ("student", "school", "employer"):
        pdf = signer.sign_party(pdf, party, IDENTITIES[party](data.agreement_no), IMAGES[party]).pdf
        stages[party] = pdf
    if finalize:
        stages["final"] = signer.finalize(pdf)
    return stages
