"""`tripact demo`: seed a demo province – 2 schools with branches and levels, rosters, enterprise and
non-enterprise employers, seals, and agreements in every state, all made through workflow/ so
that every event chain and outbox entry is real.

Demo log-ins (printed by the command) use the password ``demo1234``: for the demo only.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Any

from werkzeug.security import generate_password_hash

import codes
import images
import jobs
import storage
import workflow
from models import (
    Agreement,
    Branch,
    Employer,
    EmployerUser,
    PlatformAdmin,
    School,
    SchoolAccount,
    Seal,
    Student,
    transaction,
)
from workflow import Actor, Terms

log = logging.getLogger(__name__)

DEMO_PASSWORD = "demo1234"
DEMO_PIN = "123456"
LOCAL_JOBS = ("school_auto_sign",)
"""The outbox jobs the demo runs itself (to reach every state). Template messages wait in the outbox
for `tripact serve`, whose scheduler delivers them through the sandbox once it is up."""

SCHOOLS = [
    ("10403", "江西测试大学", [("00", "本部"), ("01", "共青校区")]),
    ("10405", "赣江理工学院", [("00", "本部")]),
]
STUDENT_NAMES = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊", "黄敏", "周杰", "吴霞",
                 "徐明", "孙丽", "马超", "朱琳", "胡斌", "郭晶", "何勇", "林䶮", "罗𠇔", "梁雪",
                 "宋佳", "唐宁", "韩冰", "冯涛"]
EMPLOYERS = [  # name, nature, credit body (16), industry, affiliation, approved
    ("南昌云帆科技有限公司", "39", "91360100MA35K7L2", "信息传输、软件和信息技术服务业", "40", True),
    ("江西赣电集团有限公司", "31", "91360000158262E1", "电力、热力、燃气及水生产和供应业", "20", True),
    ("中欧精密制造（江西）有限公司", "32", "91360400MA38P3Q9", "制造业", "40", True),
    ("景德镇新瓷文化传媒有限公司", "39", "91360200MA39R5T8", "文化、体育和娱乐业", "40", False),
]
PUBLIC_UNITS = [  # created by a school: name, nature, credit body
    ("南昌市第一人民医院", "23", "12360100491012AB"),
    ("九江市教育局", "10", "11360400014512CD"),
]


def seeded() -> bool:
    return School.select().where(School.code == SCHOOLS[0][0]).exists()


def _password() -> str:
    return generate_password_hash(DEMO_PASSWORD)


def _store_image(prefix: str, png: bytes) -> tuple[str, str]:
    digest = hashlib.sha256(png).hexdigest()
    key = f"seals/{prefix}-{digest[:16]}.png"
    storage.get_storage().put(key, png, "image/png")
    return key, digest


def _seed_parties() -> dict[str, Any]:
    out: dict[str, Any] = {"schools": [], "students": {}, "employers": [], "users": []}
    pw_hash = _password()
    PlatformAdmin.create(username="admin", name="省就业办管理员", password_hash=pw_hash)
    n = 0
    for code, name, branches in SCHOOLS:
        school = School.create(code=code, name=name, address="江西省南昌市", postcode="330000",
                               contact="就业指导中心", phone="0791-88000000")
        out["schools"].append(school)
        SchoolAccount.create(school=school, name=f"{name}管理员", password_hash=pw_hash)
        for bcode, bname in branches:
            Branch.create(school=school, code=bcode, name=bname)
        SchoolAccount.create(school=school, branch_code=branches[-1][0], level_code="31",
                             name=f"{name}{branches[-1][1]}本科", password_hash=pw_hash)
        students = []
        for i in range(12):
            n += 1
            bcode = branches[i % len(branches)][0]
            level = ["31", "31", "11", "41", "01"][i % 5]
            students.append(Student.create(
                school=school, branch_code=bcode, level_code=level, student_no=f"2023{code}{i + 1:04d}",
                name=STUDENT_NAMES[n - 1], gender="1" if i % 2 == 0 else "2",
                id_number=codes.make_id_number(f"360102200{i % 10}0{(i % 9) + 1}1{n:04d}"[:17]),
                college="信息工程学院" if i % 2 == 0 else "经济管理学院",
                major="软件工程" if i % 2 == 0 else "会计学", training_mode="1", origin="江西省南昌市",
                graduation_year=2027, phone=f"1387000{n:04d}"))
        out["students"][code] = students
    # Only the first school keeps an active seal: the second school's agreements go to review.
    key, digest = _store_image("school", images.seal_png("江西测试大学就业专用章"))
    Seal.create(school=out["schools"][0], seal_type="employment", title="江西测试大学就业专用章",
                image_key=key, image_sha256=digest)
    for i, (name, nature, body, industry, aff, approved) in enumerate(EMPLOYERS):
        e = Employer.create(name=name, credit_code=codes.make_credit_code(body), nature_code=nature,
                            industry=industry, affiliation_code=aff, address="江西省南昌市红谷滩区",
                            postcode="330038", contact="人事部", phone="0791-86000000",
                            email=f"hr{i}@example.cn", review_status="approved" if approved else "pending")
        out["employers"].append(e)
    for name, nature, body in PUBLIC_UNITS:
        out["employers"].append(Employer.create(
            name=name, credit_code=codes.make_credit_code(body), nature_code=nature, affiliation_code="40",
            review_status="approved", created_by_school=out["schools"][0], address="江西省", contact="人事科"))
    for i, e in enumerate(out["employers"]):
        out["users"].append(EmployerUser.create(
            employer=e, username=f"hr{i + 1}", name=f"{e.name[:4]}人事", phone=f"1399100{i:04d}",
            password_hash=pw_hash, signing_pin_hash=generate_password_hash(DEMO_PIN)))
        key, digest = _store_image(f"employer{e.id}", images.seal_png(f"{e.name}合同专用章"[:14]))
        Seal.create(employer=e, seal_type="contract", title=f"{e.name}合同专用章", image_key=key,
                    image_sha256=digest)
    return out


def _terms(i: int) -> Terms:
    return Terms(position=["软件工程师", "财务专员", "电气工程师", "教师", "护士"][i % 5],
                 work_location=["南昌", "九江", "赣州", "上饶", "景德镇"][i % 5],
                 monthly_salary_fen=(6000 + 500 * i) * 100, probation_months=3, contract_years=3,
                 liquidated_damages_fen=3000_00, remarks="五险一金，提供员工宿舍。")


def _drive(student: Student, employer: Employer, user: EmployerUser, upto: str, i: int) -> Agreement:
    """Take a fresh application as far as ``upto`` through the real transitions."""
    s, u = Actor.student(student, "127.0.0.1"), Actor.employer_user(user, "127.0.0.1")
    a = workflow.apply(s, employer.id, _terms(i))
    if upto == "applied":
        return a
    if upto in ("withdrawn", "rejected"):
        return (workflow.withdraw(s, a.id) if upto == "withdrawn"
                else workflow.reject(u, a.id, "岗位已招满"))
    a = workflow.confirm(u, a.id, employer_details={"archive_unit": f"{employer.name}人事部"})
    if upto == "awaiting_student":
        return a
    workflow.student_sign(s, a.id, images.signature_png(student.name))
    jobs.drain(kinds=LOCAL_JOBS)
    a = Agreement.get_by_id(a.id)
    if upto in ("school_review", "returned"):
        if upto == "returned":
            staff = SchoolAccount.get((SchoolAccount.school == student.school_id) & (SchoolAccount.branch_code == ""))
            a = workflow.school_return(Actor.school_account(staff), a.id, "学生信息需核实")
        return a
    if upto == "awaiting_employer":
        return a
    seal = Seal.get(Seal.employer == employer.id)
    a = workflow.employer_sign(u, a.id, seal.id)
    if upto == "completed":
        return a
    staff = SchoolAccount.get((SchoolAccount.school == student.school_id) & (SchoolAccount.branch_code == ""))
    if upto == "cancelled":
        return workflow.cancel(Actor.school_account(staff), a.id, "wrong_info", "专业信息填写错误")
    a = workflow.initiate_termination(u, a.id, "岗位调整，双方协商解约")
    if upto == "terminated":
        return workflow.agree_termination(s, a.id)
    return a  # terminating


PLAN = ["applied", "awaiting_student", "awaiting_employer", "completed", "completed", "terminating",
        "terminated", "cancelled", "rejected", "withdrawn"]


def _seed_wechat(parties: dict[str, Any], sandbox: bool, menu: list[dict[str, Any]]) -> list[str]:
    """Bind the demo employer users (and the students who already have agreements) to WeChat users,
    and create those users in the local sandbox's phone simulator. Returns how-to lines."""
    from models import WechatBinding

    lines = []
    if sandbox:
        from wechat_bot.store import SandboxKV

        SandboxKV.write("menu", {"button": menu})  # as `tripact wechat menu` would have pushed it
    for user in parties["users"][:3]:
        openid = f"o_demo_hr{user.id}"
        WechatBinding.create(openid=openid, employer_user=user)
        if sandbox:
            from wechat_bot.store import SandboxUser

            SandboxUser.create(openid=openid, nickname=f"{user.name}（{user.employer.name[:8]}）", subscribed=True)
        lines.append(f"employer user {user.username}: phone user {openid}")
    for student in parties["students"][SCHOOLS[0][0]][:len(PLAN)]:
        openid = f"o_demo_stu{student.id}"
        WechatBinding.create(openid=openid, student=student)
        if sandbox:
            from wechat_bot.store import SandboxUser

            SandboxUser.create(openid=openid, nickname=f"学生{student.name}", subscribed=True)
    free = parties["students"][SCHOOLS[0][0]][len(PLAN)]
    lines.append(f"an unbound student to bind: school {SCHOOLS[0][0]}, student number {free.student_no}, "
                 f"name {free.name}, last six ID characters {free.id_number[-6:]}")
    return lines


def seed(sandbox: bool = False, menu: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Create the demo data; refuses to run twice. Returns a summary for the CLI."""
    with transaction():
        parties = _seed_parties()
        wechat_lines = _seed_wechat(parties, sandbox, menu or [])
    first = parties["students"][SCHOOLS[0][0]]
    second = parties["students"][SCHOOLS[1][0]]
    employers, users = parties["employers"], parties["users"]
    made: dict[str, int] = {}
    approved = [(e, u) for e, u in zip(employers, users, strict=True) if e.review_status == "approved"]
    for i, upto in enumerate(PLAN):
        e, u = approved[i % len(approved)]
        a = _drive(first[i], e, u, upto, i)
        made[a.status] = made.get(a.status, 0) + 1
    # The second school has no seal: its signed agreements wait in the review queue.
    for i, upto in enumerate(["school_review", "returned", "applied"]):
        e, u = approved[i]
        a = _drive(second[i], e, u, upto, i)
        made[a.status] = made.get(a.status, 0) + 1
    # One application left unanswered past its deadline.
    e, u = approved[1]
    a = workflow.apply(Actor.student(second[3]), e.id, _terms(3))
    Agreement.update(deadline_at=a.deadline_at - dt.timedelta(days=30)).where(Agreement.id == a.id).execute()
    for _ in workflow.expire_overdue():
        made["expired"] = made.get("expired", 0) + 1
    jobs.drain(kinds=LOCAL_JOBS)
    return {"agreements": made, "password": DEMO_PASSWORD, "pin": DEMO_PIN, "wechat": wechat_lines}
