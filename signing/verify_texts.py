"""Verdict sentences of the verification report, (Chinese, English), in one place for review."""

from __future__ import annotations

UNREADABLE = (
    "文件不是可读取的 PDF（可能已损坏、被截断或加密）。",
    "The file is not a readable PDF (damaged, truncated or encrypted).",
)
DAMAGED = ("签名数据已损坏，无法核验", "signature data is damaged and cannot be checked")
NO_SIGNATURES = ("文件中没有电子签名。", "The file carries no electronic signature.")
NOT_INTACT = (
    "签名后文档内容被改动（签名与内容不符，可能是复制来的签名）",
    "the document content changed after signing (digest mismatch, possibly a copied signature)",
)
INVALID = ("签名值无效", "the signature value is invalid")
UNTRUSTED = (
    "签名证书不是由本平台根证书签发（不受信任）",
    "the signing certificate does not chain to a trusted platform root (untrusted)",
)
OUT_OF_VALIDITY = (
    "签名时签名证书不在有效期内（已过期或尚未生效）",
    "the signing certificate was not valid at the time of signing (expired or not yet valid)",
)
NO_TIMESTAMP = ("签名没有可信时间戳", "the signature has no trusted timestamp")
BAD_TIMESTAMP = ("签名时间戳无效或不受信任", "the signature timestamp is invalid or untrusted")
MODIFIED = (
    "签名后文档被追加了不允许的修改（如新增文字）",
    "the document was modified after signing in a way that is not allowed (e.g. added text)",
)
REVOKED = (
    "签名证书或其签发机构证书已被吊销",
    "the signing certificate or an issuing CA certificate is revoked",
)
TRAILING_DATA = (
    "最后一个签名之后附有未被任何签名覆盖的数据（文件可能被截断或拼接）",
    "the file carries data after the last signature that no signature covers (truncated or spliced file)",
)
MODIFIED_AFTER_FINAL = (
    "最后一个签名/时间戳之后文档又被修改（只允许追加验证数据）",
    "the document was modified after its last signature or timestamp (only validation data may follow)",
)
NO_PARTY_SIGNATURE = (
    "文件中只有时间戳，没有任何签署方的电子签名。",
    "The file carries timestamps only, no party's signature.",
)
TOO_COMPLEX = (
    "文件结构异常（对象、修订或签名数量远超协议文件），不予核验。",
    "The file's structure is abnormal (far more objects, revisions or signatures than an agreement has); not checked.",
)
OTHER_AGREEMENT = ("签名属于另一份协议", "the signature belongs to another agreement")
NOT_ARCHIVED = ("文件与平台存档的任何版本都不一致。", "The file matches no copy in the platform archive.")


def not_in_force(description_zh: str, description_en: str) -> tuple[str, str]:
    """The file is genuine, but not an agreement in force (cancelled, terminated, not fully signed)."""
    return (f"文件与平台存档一致，但{description_zh}。",
            f"The file matches the platform archive, but {description_en}.")


def all_ok(count: int, archived: bool) -> tuple[str, str]:
    """The success sentence."""
    zh = f"全部 {count} 个电子签名/时间戳有效，签署后文档未被篡改"
    en = f"All {count} signatures/timestamps are valid and the document was not altered after signing"
    if archived:
        zh += "，且与平台存档一致"
        en += ", and it matches the platform archive"
    return zh + "。", en + "."
