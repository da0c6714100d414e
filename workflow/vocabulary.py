"""The workflow's vocabulary: states and their labels, errors, who acts (Actor), the negotiated
terms (Terms) and the checks on what people type."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models import EmployerUser, SchoolAccount, Student

STATUS_LABELS = {
    "applied": "待用人单位确认",
    "awaiting_student": "待学生签署",
    "awaiting_school": "学校签署中",
    "school_review": "待学校审核",
    "awaiting_employer": "待用人单位签署",
    "completed": "已完成",
    "terminating": "解约待学生确认",
    "rejected": "用人单位已拒绝",
    "withdrawn": "学生已撤回",
    "expired": "已过期",
    "returned": "学校已退回",
    "terminated": "已解约",
    "cancelled": "已作废",
}
LIVE = frozenset({"applied", "awaiting_student", "awaiting_school", "school_review", "awaiting_employer",
                  "completed", "terminating"})
FINAL = frozenset(STATUS_LABELS) - LIVE
PARTIES = ("student", "school", "employer")


# ---------------------------------------------------------------- errors

class WorkflowError(Exception):
    """Base of every refusal; ``message`` is Chinese for the end user."""

    status_code = 400

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context


class NotFound(WorkflowError):
    status_code = 404


class NotAllowed(WorkflowError):
    """The actor may not do this to this agreement (role, ownership or school scope)."""

    status_code = 403


class WrongState(WorkflowError):
    """The agreement is not in a state where this action is possible."""

    status_code = 409


class Conflict(WorkflowError):
    """Someone else changed the agreement first; reload and try again."""

    status_code = 409


class InvalidInput(WorkflowError):
    """The submitted data is not acceptable; ``fields`` maps field names to reasons."""

    status_code = 400

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message, fields=fields or {})
        self.fields = fields or {}


class SigningUnavailable(WorkflowError):
    """The signing step failed (keys, store, timestamp); the transition was rolled back."""

    status_code = 503


CONFLICT_MESSAGE = "协议已被他人更新，请刷新页面后重试"


# ---------------------------------------------------------------- actors and inputs

@dataclass(frozen=True)
class Actor:
    """Who acts: a student, an employer user, a school account, a platform admin or the system."""

    kind: str  # student / employer / school / admin / system
    id: int | None
    name: str
    ip: str = ""

    @classmethod
    def student(cls, s: Student, ip: str = "") -> Actor:
        return cls("student", s.id, s.name, ip)

    @classmethod
    def employer_user(cls, u: EmployerUser, ip: str = "") -> Actor:
        return cls("employer", u.id, u.name, ip)

    @classmethod
    def school_account(cls, a: SchoolAccount, ip: str = "") -> Actor:
        return cls("school", a.id, a.name, ip)

    @classmethod
    def admin(cls, admin_id: int, name: str, ip: str = "") -> Actor:
        return cls("admin", admin_id, name, ip)

    @classmethod
    def system(cls) -> Actor:
        return cls("system", None, "系统")


@dataclass(frozen=True)
class Terms:
    """The negotiated terms. Money in integer fen."""

    position: str
    work_location: str
    monthly_salary_fen: int
    probation_months: int | None = None
    internship_period: str = ""
    contract_years: int | None = None
    liquidated_damages_fen: int = 0
    remarks: str = ""

    def validate(self) -> Terms:
        errors: dict[str, str] = {}
        if not 1 <= len(self.position.strip()) <= 100:
            errors["position"] = "请填写岗位（不超过100字）"
        if not 1 <= len(self.work_location.strip()) <= 100:
            errors["work_location"] = "请填写工作地点（不超过100字）"
        if not 0 < self.monthly_salary_fen <= 100_000_000:
            errors["monthly_salary_fen"] = "月薪应大于0且不超过100万元"
        if self.probation_months is not None and not 0 <= self.probation_months <= 6:
            errors["probation_months"] = "试用期不得超过6个月"
        if self.probation_months and self.internship_period.strip():
            errors["internship_period"] = "试用期与见习期只能填写其一"
        if len(self.internship_period) > 50:
            errors["internship_period"] = "见习期不超过50字"
        if self.contract_years is not None and not 0 < self.contract_years <= 50:
            errors["contract_years"] = "合同期限应在1至50年之间"
        if not 0 <= self.liquidated_damages_fen <= 10_000_000:
            errors["liquidated_damages_fen"] = "违约金应在0至10万元之间"
        if len(self.remarks) > 2000:
            errors["remarks"] = "备注不超过2000字"
        if errors:
            raise InvalidInput("协议条款填写有误", errors)
        return self


EMPLOYER_DETAIL_FIELDS = {
    # agreement snapshot field -> (employer field, max length)
    "industry": ("industry", 50), "affiliation_code": ("affiliation_code", 4),
    "employer_address": ("address", 200), "employer_postcode": ("postcode", 10),
    "employer_contact": ("contact", 50), "employer_phone": ("phone", 30), "employer_email": ("email", 100),
    "archive_unit": ("archive_unit", 100), "archive_address": ("archive_address", 200),
    "archive_postcode": ("archive_postcode", 10),
}


ACTION_LABELS = {
    "apply": "申请协议", "withdraw": "撤回申请", "confirm": "确认协议", "reject": "拒绝申请",
    "student_sign": "签署协议", "school_sign": "学校签署", "school_review": "转学校审核",
    "school_approve": "审核通过并签署", "school_return": "退回协议", "employer_sign": "签署协议",
    "initiate_termination": "发起解约", "agree_termination": "同意解约", "refuse_termination": "拒绝解约",
    "cancel": "作废协议", "expire": "过期处理",
}

CANCEL_KINDS = {"offline": "线下签约", "wrong_info": "协议信息有误"}


def checked_reason(reason: str | None) -> str:
    """A reason someone must give (rejection, return, termination, cancellation): stripped,
    required, at most 500 characters."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("请填写原因", {"reason": "必填"})
    if len(reason) > 500:
        raise InvalidInput("原因不超过500字", {"reason": "不超过500字"})
    return reason
