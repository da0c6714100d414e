"""Every user-facing sentence printed by the renderer, in one place for review (simplified Chinese)."""

from __future__ import annotations

PRODUCER = "tripact 电子三方协议平台"

AGREEMENT_TITLE = "普通高等学校毕业生就业三方协议书"

AGREEMENT_INTRO = (
    "为明确毕业生、用人单位和学校三方在毕业生就业工作中的权利和义务，经三方协商一致，订立本协议，三方共同遵守。"
)

CLAUSES = (
    "甲方应如实向乙方介绍本人情况，在规定时间内到乙方报到。",
    "乙方应如实向甲方介绍本单位情况；甲方未能取得毕业资格的，本协议自动失效。",
    "学校如实向乙方推荐甲方，并在审核后将甲方列入就业计划。",
    "甲方报到前的入职体检不符合乙方要求的，本协议解除。",
    "三方的其他约定写入备注，备注与本协议条款具有同等效力。",
    "本协议经甲方签名、乙方和学校签章后生效；任何变更须经其他各方书面同意。",
)

VERIFY_HINT = "微信扫描右侧二维码或访问下列网址，输入核验码即可核验本协议真伪。"

SIGNATURE_NOTE = "三方电子签名（每一方签署均附可信时间戳，签署后任何改动均可被发现）："

PARTY_LABELS = {
    "student": "甲方（毕业生）签名",
    "employer": "乙方（用人单位）盖章",
    "school": "学校（就业部门）盖章",
}

PARTY_HINTS = {
    "student": "电子签名",
    "employer": "电子签章",
    "school": "电子签章",
}

EVIDENCE_TITLE = "电子签署证据报告"
