"""Factories that create real rows with sensible defaults; override any field by keyword."""
from __future__ import annotations

import hashlib
import itertools
from typing import Any

from werkzeug.security import generate_password_hash

import codes
import images
import jobs
import storage
import workflow
from models import (
    Agreement,
    Employer,
    EmployerUser,
    PlatformAdmin,
    School,
    SchoolAccount,
    Seal,
    Student,
)
from workflow import Actor, Terms

_seq = itertools.count(1)
PASSWORD = "secret-pass-1"
_PW_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")  # fast for tests
PIN = "246810"


def make_school(**kw: Any) -> School:
    n = next(_seq)
    data = {"code": f"{10000 + n}", "name": f"测试大学{n}"}
    data.update(kw)
    return School.create(**data)


def make_school_account(school: School, branch_code: str = "", level_code: str = "", **kw: Any) -> SchoolAccount:
    data = {"school": school, "branch_code": branch_code, "level_code": level_code,
            "name": f"{school.name}老师", "password_hash": _PW_HASH}
    data.update(kw)
    return SchoolAccount.create(**data)


def make_student(school: School | None = None, **kw: Any) -> Student:
    n = next(_seq)
    school = school or make_school()
    data = {"school": school, "branch_code": "00", "level_code": "31", "student_no": f"S{n:08d}",
            "name": f"学生{n}", "gender": "1", "id_number": codes.make_id_number(f"36010220000101{n % 1000:03d}"),
            "college": "信息学院", "major": "软件工程", "graduation_year": 2027, "phone": "13800138000"}
    data.update(kw)
    return Student.create(**data)


def make_employer(**kw: Any) -> Employer:
    n = next(_seq)
    data = {"name": f"测试科技有限公司{n}", "credit_code": codes.make_credit_code(f"91360100MA{n:06d}"),
            "nature_code": "39", "review_status": "approved", "contact": "人事部"}
    data.update(kw)
    return Employer.create(**data)


def make_employer_user(employer: Employer | None = None, **kw: Any) -> EmployerUser:
    n = next(_seq)
    employer = employer or make_employer()
    data = {"employer": employer, "username": f"hr{n}", "name": f"人事{n}", "password_hash": _PW_HASH,
            "signing_pin_hash": generate_password_hash(PIN, method="pbkdf2:sha256:1000")}
    data.update(kw)
    return EmployerUser.create(**data)


def make_admin(**kw: Any) -> PlatformAdmin:
    n = next(_seq)
    data = {"username": f"admin{n}", "name": "管理员", "password_hash": _PW_HASH}
    data.update(kw)
    return PlatformAdmin.create(**data)


def make_seal(school: School | None = None, employer: Employer | None = None, **kw: Any) -> Seal:
    title = kw.pop("title", (school.name if school else employer.name if employer else "测试") + "专用章")
    png = images.seal_png(title, size=160)
    key = f"seals/test-{hashlib.sha256(png).hexdigest()[:16]}-{next(_seq)}.png"
    storage.get_storage().put(key, png, "image/png")
    data = {"school": school, "employer": employer, "seal_type": "employment" if school else "contract",
            "title": title, "image_key": key, "image_sha256": hashlib.sha256(png).hexdigest()}
    data.update(kw)
    return Seal.create(**data)


def terms(**kw: Any) -> Terms:
    data: dict[str, Any] = {"position": "软件工程师", "work_location": "南昌", "monthly_salary_fen": 800000,
                            "probation_months": 3, "contract_years": 3, "liquidated_damages_fen": 300000,
                            "remarks": "五险一金"}
    data.update(kw)
    return Terms(**data)


SIGNATURE = images.signature_png("test")


class World:
    """One school (with a seal and accounts), one employer (with a user and a seal), students."""

    def __init__(self, school_seal: bool = True) -> None:
        self.school = make_school()
        self.admin_account = make_school_account(self.school)
        self.scoped_account = make_school_account(self.school, "00", "31")
        self.other_scope_account = make_school_account(self.school, "01", "31")
        if school_seal:
            self.school_seal = make_seal(school=self.school)
        self.employer = make_employer()
        self.user = make_employer_user(self.employer)
        self.employer_seal = make_seal(employer=self.employer)
        self.student = make_student(self.school)

    def student_actor(self, student: Student | None = None) -> Actor:
        return Actor.student(student or self.student, "127.0.0.1")

    @property
    def employer_actor(self) -> Actor:
        return Actor.employer_user(self.user, "127.0.0.1")

    @property
    def school_actor(self) -> Actor:
        return Actor.school_account(self.admin_account, "127.0.0.1")

    def agreement_at(self, status: str, student: Student | None = None) -> Agreement:
        """Drive a new agreement of ``student`` to ``status`` through the workflow."""
        s = self.student_actor(student)
        a = workflow.apply(s, self.employer.id, terms())
        if status == "applied":
            return a
        a = workflow.confirm(self.employer_actor, a.id)
        if status == "awaiting_student":
            return a
        workflow.student_sign(s, a.id, SIGNATURE)
        if status == "awaiting_school":
            return Agreement.get_by_id(a.id)
        jobs.drain()
        a = Agreement.get_by_id(a.id)
        if status in ("awaiting_employer", "school_review"):
            assert a.status == status, a.status
            return a
        a = workflow.employer_sign(self.employer_actor, a.id, self.employer_seal.id)
        if status == "completed":
            return a
        a = workflow.initiate_termination(self.employer_actor, a.id, "岗位调整")
        assert status == "terminating"
        return a
